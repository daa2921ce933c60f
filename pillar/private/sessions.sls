# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
# The web apps keep their sessions in Redis and are given its password. Keep both free of
# quotes, backslashes, spaces and colons: they go into redis.conf and memcached's
# `user:password` auth file, and memcached clients send `user password`.
sessions:
  redis:
    password: CHANGE-ME-sessions-redis
  memcached:
    password: CHANGE-ME-sessions-memcached
