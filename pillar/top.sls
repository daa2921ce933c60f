# The site's pillar: what every VM of the VM-roles document is configured from.
# Each VM's `roles` grain (from its name, see states/_grains/roles.py) picks its data;
# its `level` grain (production, staging) picks the cluster in `infra`.
#
# Secrets (`private/`) are never picked by grain: a minion sets its own grains (a static
# `roles: [db]` in its config would be enough), while its id is the one its accepted key
# signs for. They go by minion id only, below, and no other sls includes a private file.
# A VM has a role's secrets when its name has the role as one of the dash-separated parts
# of its first label, with or without a number: `db1-masterdb`, `db2.staging.wpdn` (db),
# `sessions2-memcache` (sessions). These are the names _grains/roles.py reads the roles
# from; a role given by a static grain gets the role's data and states, not its secrets.
{#- The ids that carry one of `roles` (alternatives: 'app|jobrunner') in their name, as a
    Python regular expression matched (re.match) against the minion id. -#}
{%- macro named(roles) -%}
'^(?:[^.]*-)?(?:{{ roles }})[0-9]*(?:[-.]|\Z)'
{%- endmacro %}
base:
  '*':
    - infra
    - users
    - mail.relay
    - monit
    - private.monit
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
  # Secrets, by minion id.
  {{ named('salt') }}:
    - match: pcre
    - private.rsync
  {{ named('mail') }}:
    - match: pcre
    - private.mail
  # Every db VM: the replication account and certificate, and every application's database
  # account, which the masterdb creates (any db VM may be made the masterdb).
  {{ named('db') }}:
    - match: pcre
    - private.mariadb
    - private.databases.wpwiki
    - private.databases.wpblog
    - private.databases.tracker
    - private.databases.notes
    - private.databases.fxa
  # The session stores' passwords: the sessions VMs and the web apps that keep their
  # sessions there (the docs wiki, its job runners, the project tracker).
  {{ named('sessions|app|jobrunner|project') }}:
    - match: pcre
    - private.sessions
  {{ named('accounts') }}:
    - match: pcre
    - private.databases.fxa
  # The job runners run the docs wiki's code with its configuration.
  {{ named('app|jobrunner') }}:
    - match: pcre
    - private.app
    - private.databases.wpwiki
  {{ named('blog') }}:
    - match: pcre
    - private.blog
    - private.databases.wpblog
  {{ named('project') }}:
    - match: pcre
    - private.databases.tracker
  {{ named('notes') }}:
    - match: pcre
    - private.notes
    - private.databases.notes
  {{ named('bots') }}:
    - match: pcre
    - private.bots
