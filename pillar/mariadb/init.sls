# MariaDB on the db VMs (states/db, and states/masterdb on the VM that is also masterdb).
# The replication password and the SSL certificate come from private/mariadb.sls, and the
# applications' databases and accounts (each named after its database, created on the master
# by states/masterdb) from private/databases/: top.sls gives both to the db VMs by id.
{#- server_id must differ between the VMs that replicate together and never change: the
    VM's number does both (db1-masterdb -> 1, db2 -> 2), since names number the VMs of a
    role. Each level is its own replication cluster, so db1 of staging may also be 1. #}
{%- set number = grains['id'].split('.')[0].split('-')[0]|regex_replace('[^0-9]', '') %}
mariadb:
  server_id: {{ number|int if number else 1 }}
  innodb_buffer_pool_size: 1G
  # Binary logs kept: how long a replica can be away and still catch up from the master.
  expire_logs_days: 10
  replication:
    user: replication
