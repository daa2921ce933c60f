# The web apps' general-purpose object cache (states/memcache): one Memcached instance per
# memcache VM, on the internal network, at the port the apps are given (memcache:11211).
memcache:
  port: 11211
  # Megabytes of item memory: the VM's main use, leave room for the system and Monit.
  memory: 1024
  max_connections: 2048
