# memcache: the web apps' general-purpose object cache. The document leaves this role blank;
# assumed from what the site ran: Memcached holding MediaWiki's object and parser caches
# and the other apps' caches, everything except sessions (those go to the sessions VMs, so
# a cache flood never evicts a session). Internal network only, on the port the apps expect
# (memcache:11211). No authentication: it holds only data the apps can rebuild, and
# MediaWiki's memcached client cannot log in. Its instance is `cache`, apart from the
# sessions role's, so both roles can share a VM.
{%- from 'site.jinja' import site with context %}
{%- from 'memcache/instance.jinja' import memcached_instance with context %}
{%- set memcache = salt['pillar.get']('memcache', {}) %}
include:
  - monit
  - memcache.server

{{ memcached_instance('cache', port=memcache.get('port', 11211), memory=memcache.get('memory', 1024),
                      bind=site.internal_ip, max_connections=memcache.get('max_connections', 1024)) }}
