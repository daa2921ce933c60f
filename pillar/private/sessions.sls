# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
# The web apps that keep sessions here are given the same values. Keep both free of quotes,
# spaces and colons: they go into redis.conf and memcached's `user:password` auth file, and
# memcached clients send `user password`.
sessions:
  redis:
    password: CHANGE-ME-sessions-redis
  memcached:
    password: CHANGE-ME-sessions-memcached
