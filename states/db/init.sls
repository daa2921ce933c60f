# db: the MariaDB servers (docs/site.md, "db"). The web apps send all reads and writes to the
# db VM that is also masterdb, found through infra:hosts_entries:masterdb; every other db VM
# is a hot backup replicating from it over SSL. No db forbids writes, so that the master can
# be changed quickly (states/masterdb says how).
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'db/sql.jinja' import sql_str with context %}
{%- set mariadb = salt['pillar.get']('mariadb', {}) %}
{%- set replication = mariadb.get('replication', {}) %}
{%- set ssl_dir = '/etc/mysql/ssl' %}
{%- set master = site.hosts.get('masterdb') %}
include:
  - monit

mariadb-server:
  pkg.installed: []

{{ ssl_dir }}:
  file.directory:
    - user: root
    - group: mysql
    - mode: '0750'
    - require:
      - pkg: mariadb-server

{%- for file, key, mode in [('ca.pem', 'ca', '0644'), ('server-cert.pem', 'cert', '0644'), ('server-key.pem', 'key', '0640')] %}

{{ ssl_dir }}/{{ file }}:
  file.managed:
    - contents_pillar: mariadb:ssl:{{ key }}
    - user: root
    - group: mysql
    - mode: '{{ mode }}'
    - require:
      - file: {{ ssl_dir }}
    - watch_in:
      - service: mariadb
{%- endfor %}

/etc/mysql/mariadb.conf.d/60-webplatform.cnf:
  file.managed:
    - source: salt://db/files/webplatform.cnf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        bind_address: {{ site.internal_ip }}
        server_id: {{ mariadb.get('server_id', 1) }}
        expire_logs_days: {{ mariadb.get('expire_logs_days', 10) }}
        innodb_buffer_pool_size: {{ mariadb.get('innodb_buffer_pool_size', '128M') }}
        ssl_dir: {{ ssl_dir }}
    - require:
      - pkg: mariadb-server

mariadb:
  service.running:
    - enable: True
    - watch:
      - file: /etc/mysql/mariadb.conf.d/60-webplatform.cnf

{#- A replica follows whatever infra:hosts_entries:masterdb names: when that entry changes,
    the next state.apply points it at the new master. It is never pointed at itself, e.g.
    on a promoted VM whose name does not say masterdb yet.
    MASTER_USE_GTID=current_pos: the replica resumes after the later of the last transaction
    it replicated (gtid_slave_pos) and the last one it wrote itself (gtid_binlog_pos). An
    old master made a replica (docs/site.md, runbook step 8) has only the latter, and with
    slave_pos would ask the new master for its binary log from the start; a replica seeded
    from a `mariadb-dump --gtid --master-data` dump has the former, which the dump sets.
    The catch: a write on a replica that reaches its binary log becomes its position, one
    no master has, and replication stops at the next reconnect. Load a seed dump, and make
    any write by hand on a replica, with SET sql_log_bin = 0. #}
{%- if 'masterdb' not in site.roles and master and master != site.internal_ip %}

mariadb-replication:
  cmd.run:
    - name: mysql
    - stdin: |
        STOP SLAVE;
        CHANGE MASTER TO
          MASTER_HOST={{ sql_str(master) }},
          MASTER_USER={{ sql_str(replication.get('user', 'replication')) }},
          MASTER_PASSWORD={{ sql_str(replication.get('password', '')) }},
          MASTER_SSL=1,
          MASTER_SSL_CA={{ sql_str(ssl_dir ~ '/ca.pem') }},
          MASTER_USE_GTID=current_pos;
        START SLAVE;
    - unless: mysql -NBe 'SHOW SLAVE STATUS' | cut -f2 | grep -qxF '{{ master }}'
    - require:
      - service: mariadb
{%- endif %}

{{ monit_check('mariadb', service='mariadb', pidfile='/run/mysqld/mysqld.pid', port=3306, host=site.internal_ip) }}
