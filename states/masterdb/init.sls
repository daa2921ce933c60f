# masterdb: a "meta" role (docs/site.md, "masterdb"). It marks the VM other configuration
# should treat as the entry point of its cluster. Exactly one VM has both db and masterdb
# (by convention the lowest number, e.g. db1-masterdb): the web apps send all their reads
# and writes to it, and the other db VMs replicate from it (states/db). On that VM this adds
# the replication user and the master's binary log settings.
#
# Changing the master is a pillar edit: point infra:hosts_entries:masterdb (pillar/infra/
# <level>.sls) at the new master, then state.apply. The web apps follow the `masterdb` host
# entry and the replicas re-point themselves at it (states/db); writes are allowed on every
# db, so the new master takes them at once. The manual steps around it (locking writes on
# the old master, waiting for the replicas, RESET SLAVE ALL on the new master, moving the
# masterdb name) are in docs/site.md, "Changing the MariaDB replication master".
{%- from 'site.jinja' import site with context %}
{%- if 'db' in site.roles %}
include:
  - db
{%- endif %}

{#- Other states (and admins) can tell the entry point from this file, whatever else the
    VM runs; a masterdb without db has nothing else to do. #}
/etc/webplatform/masterdb:
  file.managed:
    - source: salt://masterdb/files/masterdb.jinja
    - template: jinja
    - makedirs: True
    - mode: '0644'
    - context:
        level: {{ site.level }}
        roles: {{ site.roles|yaml }}

{%- if 'db' in site.roles %}
{%- from 'db/sql.jinja' import mariadb_account with context %}
{%- set mariadb = salt['pillar.get']('mariadb', {}) %}
{%- set replication = mariadb.get('replication', {}) %}
{%- set user = replication.get('user', 'replication') %}
{#- MariaDB matches a host written address/netmask; the replicas are on the internal network. #}
{%- set network = salt['network.convert_cidr'](site.internal_cidr) %}
{%- set host = network.network ~ '/' ~ network.netmask %}

/etc/mysql/mariadb.conf.d/61-masterdb.cnf:
  file.managed:
    - source: salt://masterdb/files/masterdb.cnf.jinja
    - template: jinja
    - mode: '0644'
    - require:
      - pkg: mariadb-server
    - watch_in:
      - service: mariadb

{#- The replicas get this account, and the ones below, through replication. #}
{{ mariadb_account('mariadb-replication-user', user, host, replication.get('password', ''),
                   'REPLICATION SLAVE ON *.*', require_ssl=True) }}

{#- The applications' databases, each with an account of the same name that the application
    VMs reach over the internal network. #}
{%- for name, database in salt['pillar.get']('databases', {})|dictsort %}

{{ mariadb_account('mariadb-database-' ~ name, name, host, database.get('password', ''),
                   'ALL PRIVILEGES ON `' ~ name ~ '`.*', database=name) }}
{%- endfor %}
{%- endif %}
