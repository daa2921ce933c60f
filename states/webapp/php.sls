# PHP-FPM for the PHP web roles: one pool per site (webapp/vhost.jinja), each on its own Unix
# socket that only nginx may use, so no PHP backend is reachable from any network.
{%- from 'webapp/map.jinja' import webapp with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
include:
  - monit

php-fpm:
  pkg.installed:
    - name: {{ webapp.fpm_service }}
  service.running:
    - name: {{ webapp.fpm_service }}
    - enable: True
    - reload: True
    - require:
      - pkg: php-fpm

# Debian's catch-all `www` pool: each site runs in a pool of its own instead.
{{ webapp.fpm_pool_dir }}/www.conf:
  file.absent:
    - require:
      - pkg: php-fpm
    - watch_in:
      - service: php-fpm

{{ monit_check('php-fpm', service=webapp.fpm_service, pidfile=webapp.fpm_pidfile) }}
