# PLACEHOLDER secret. The real ones live outside this repository; see private/README.
# The MariaDB account of the annotation service: read by its application and by the db VMs, which create it.
databases:
  notes:
    password: CHANGE-ME-notes-db
