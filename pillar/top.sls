# The site's pillar: what every VM of the VM-roles document is configured from. Roles come
# from each minion's `roles` grain; `level` (production, staging) picks the cluster.
base:
  '*':
    - infra
    - users
    - mail.relay
  'roles:salt':
    - match: grain
    - rsync
    - gdnsd
  'roles:mail':
    - match: grain
    - mail
  'roles:db':
    - match: grain
    - mariadb
  'roles:sessions':
    - match: grain
    - sessions
