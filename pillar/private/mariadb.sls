# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
# One certificate, signed by the site's own CA, serves every db VM: any of them may become
# the master, and replicas check the master's certificate against that CA. Values are PEM
# texts (YAML block scalars, `key: |`). The replication password may hold any character but
# a line break: states/db/sql.jinja escapes it for the SQL statements it goes into.
mariadb:
  replication:
    password: CHANGE-ME-mariadb-replication
  ssl:
    ca: CHANGE-ME-mariadb-ssl-ca-certificate
    cert: CHANGE-ME-mariadb-ssl-certificate
    key: CHANGE-ME-mariadb-ssl-private-key
