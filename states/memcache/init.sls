# memcache: the web apps' general-purpose object cache. The document leaves this role blank;
# assumed from what the site ran: Memcached holding MediaWiki's object and parser caches
# and the other apps' caches, everything except sessions (those go to the sessions VMs, so
# a cache flood never evicts a session). Internal network only. No authentication: it
# holds only data the apps can rebuild, and MediaWiki's memcached client cannot log in.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- set memcache = salt['pillar.get']('memcache', {}) %}
include:
  - monit

memcached:
  pkg.installed: []
  service.running:
    - enable: True
    - watch:
      - file: /etc/memcached.conf

/etc/memcached.conf:
  file.managed:
    - source: salt://memcache/files/memcached.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        bind: {{ site.internal_ip }}
        port: {{ memcache.get('port', 11211) }}
        memory: {{ memcache.get('memory', 1024) }}
        max_connections: {{ memcache.get('max_connections', 1024) }}
    - require:
      - pkg: memcached

{{ monit_check('memcached', service='memcached', pidfile='/run/memcached/memcached.pid', port=memcache.get('port', 11211), host=site.internal_ip) }}
