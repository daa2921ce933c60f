# sessions: the web apps' session stores (docs/site.md, "sessions"), Redis and Memcached.
# ONLY session data goes here; object caches go to the memcache VMs, so a cache flood never
# evicts sessions. Both listen on the internal network only and, as the document asks for
# more enforcement than that, both require a password (private/sessions.sls). Every web app
# keeps its sessions in Redis and is given its password. Memcached, which the document
# also lists, is the `sessions` instance on port 11212 with its ASCII authentication, for
# an app that can only store sessions in Memcached; none does today. Its port and instance
# differ from the memcache role's, so both roles can share a VM.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'memcache/instance.jinja' import memcached_instance with context %}
{%- set sessions = salt['pillar.get']('sessions', {}) %}
{%- set redis = sessions.get('redis', {}) %}
{%- set memcached = sessions.get('memcached', {}) %}
include:
  - monit
  - memcache.server

redis-server:
  pkg.installed: []
  service.running:
    - enable: True
    - watch:
      - file: /etc/redis/redis.conf

{#- Redis forks for its snapshots; without overcommit the fork can fail on a busy VM. #}
vm.overcommit_memory:
  sysctl.present:
    - value: 1

/etc/redis/redis.conf:
  file.managed:
    - source: salt://sessions/files/redis.conf.jinja
    - template: jinja
    - user: redis
    - group: redis
    - mode: '0640'
    - context:
        bind: {{ site.internal_ip }}
        port: {{ redis.get('port', 6379) }}
        password: {{ redis.get('password', '')|yaml_dquote }}
        maxmemory: {{ redis.get('maxmemory', '256mb') }}
    - require:
      - pkg: redis-server

{{ monit_check('redis', service='redis-server', pidfile='/run/redis/redis-server.pid', port=redis.get('port', 6379), host=site.internal_ip) }}

{{ memcached_instance('sessions', port=memcached.get('port', 11212), memory=memcached.get('memory', 128),
                      bind=site.internal_ip, auth=memcached.get('user', 'sessions') ~ ':' ~ memcached.get('password', '')) }}
