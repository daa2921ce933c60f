# The site's highstate. Every VM gets `common`; each role of the VM-roles document
# (docs/site.md) gets its own states, matched on the `roles` grain that
# _grains/roles.py reads from the VM's name (db1-masterdb -> [db, masterdb]).
base:
  '*':
    - common
  'roles:source':
    - match: grain
    - source
  'roles:salt':
    - match: grain
    - salt
  'roles:mail':
    - match: grain
    - mail
  'roles:masterdb':
    - match: grain
    - masterdb
  'roles:db':
    - match: grain
    - db
  'roles:sessions':
    - match: grain
    - sessions
  'roles:accounts':
    - match: grain
    - accounts
  'roles:memcache':
    - match: grain
    - memcache
  'roles:elastic':
    - match: grain
    - elastic
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
