# Session stores of the web apps (states/sessions): Redis and Memcached on the internal
# network, each behind a password from private/sessions.sls. Session data only.
sessions:
  redis:
    port: 6379
    maxmemory: 256mb
  memcached:
    # Not 11211: that is the memcache role's object cache, which may share the VM.
    port: 11212
    # Megabytes of item memory.
    memory: 128
    user: sessions
