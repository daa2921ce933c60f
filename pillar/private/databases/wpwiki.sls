# PLACEHOLDER secret. The real ones live outside this repository; see private/README.
# The MariaDB account of the docs wiki (MediaWiki, app VMs and jobrunner VMs): read by its application and by the db VMs, which create it.
databases:
  wpwiki:
    password: CHANGE-ME-wiki-db
