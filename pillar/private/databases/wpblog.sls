# PLACEHOLDER secret. The real ones live outside this repository; see private/README.
# The MariaDB account of the blog (WordPress): read by its application and by the db VMs, which create it.
databases:
  wpblog:
    password: CHANGE-ME-blog-db
