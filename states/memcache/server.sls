# Memcached itself, for every role that runs an instance of it (memcache, sessions; see
# memcache/instance.jinja). Each instance is its own memcached@NAME unit, with its own
# config file and port, so the roles can share a VM.
{%- from 'systemd/unit.jinja' import systemd_unit with context %}

memcached:
  pkg.installed: []
  {#- Debian's single instance (/etc/memcached.conf, 127.0.0.1:11211), started on install:
      nothing uses it, and it would hold port 11211 where the internal address is loopback. #}
  service.dead:
    - enable: False
    - require:
      - pkg: memcached

{{ systemd_unit('memcached@', 'salt://memcache/files/memcached@.service.jinja') }}
