# PLACEHOLDER secret. The real ones live outside this repository; see private/README.
# The MariaDB account of Firefox Accounts: read by its application and by the db VMs, which create it.
databases:
  fxa:
    password: CHANGE-ME-fxa-db
