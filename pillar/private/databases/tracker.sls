# PLACEHOLDER secret. The real ones live outside this repository; see private/README.
# The MariaDB account of the project tracker: read by its application and by the db VMs, which create it.
databases:
  tracker:
    password: CHANGE-ME-tracker-db
