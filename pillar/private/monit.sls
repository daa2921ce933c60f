# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
monit:
  httpd:
    password: CHANGE-ME-monit
