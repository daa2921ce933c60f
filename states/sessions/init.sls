# sessions: the web apps' session stores (docs/site.md, "sessions"), Redis and Memcached,
# as each app supports one or the other. ONLY session data goes here; object caches go to
# the memcache VMs, so a cache flood never evicts sessions. Both listen on the internal
# network only and, as the document asks for more enforcement than that, both require a
# password (private/sessions.sls), which the web apps are given too. Memcached's check is
# its ASCII authentication, so an app whose client cannot send it keeps sessions in Redis.
# Assumed: one sessions VM per level holds both stores, not also the memcache role.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- set sessions = salt['pillar.get']('sessions', {}) %}
{%- set redis = sessions.get('redis', {}) %}
{%- set memcached = sessions.get('memcached', {}) %}
{%- set auth_file = '/etc/memcached.auth' %}
include:
  - monit

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

memcached:
  pkg.installed: []
  service.running:
    - enable: True
    - watch:
      - file: /etc/memcached.conf
      - file: {{ auth_file }}

/etc/memcached.conf:
  file.managed:
    - source: salt://sessions/files/memcached.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        bind: {{ site.internal_ip }}
        port: {{ memcached.get('port', 11211) }}
        memory: {{ memcached.get('memory', 128) }}
        auth_file: {{ auth_file }}
    - require:
      - pkg: memcached

{#- memcached reads it after dropping to the memcache user. #}
{{ auth_file }}:
  file.managed:
    - contents: {{ (memcached.get('user', 'sessions') ~ ':' ~ memcached.get('password', ''))|yaml_dquote }}
    - user: memcache
    - group: memcache
    - mode: '0600'
    - require:
      - pkg: memcached

{{ monit_check('redis', service='redis-server', pidfile='/run/redis/redis-server.pid', port=redis.get('port', 6379), host=site.internal_ip) }}

{{ monit_check('memcached', service='memcached', pidfile='/run/memcached/memcached.pid', port=memcached.get('port', 11211), host=site.internal_ip) }}
