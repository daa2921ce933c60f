# Session data only: Redis and Memcached on the internal network.
sessions:
  redis: {bind: 0.0.0.0, port: 6379, maxmemory: 256mb}
  memcached: {port: 11211, memory: 128}
