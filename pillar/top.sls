# The site's pillar: what every VM of the VM-roles document is configured from.
# Each VM's `roles` grain (from its name, see states/_grains/roles.py) picks its data;
# its `level` grain (production, staging) picks the cluster in `infra`.
# Secrets come from `private/`, included only by the roles that need them.
base:
  '*':
    - infra
    - users
    - mail.relay
    - monit
  'roles:source':
    - match: grain
    - gitolite
  'roles:salt':
    - match: grain
    - rsync
    - gdnsd
    - jumpbox
  'roles:mail':
    - match: grain
    - mail
  'roles:db':
    - match: grain
    - mariadb
  'roles:sessions':
    - match: grain
    - sessions
  'roles:memcache':
    - match: grain
    - memcache
  'roles:elastic':
    - match: grain
    - elastic
  'roles:accounts':
    - match: grain
    - accounts
  'roles:app':
    - match: grain
    - app
  'roles:blog':
    - match: grain
    - blog
  'roles:project':
    - match: grain
    - project
  'roles:notes':
    - match: grain
    - notes
  'roles:bots':
    - match: grain
    - bots
  'roles:jobrunner':
    - match: grain
    - jobrunner
