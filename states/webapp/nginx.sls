# nginx: the one public entry point of every web role (port 80, and 443 where a role's pillar
# gives a certificate). Backends behind it listen on Unix sockets or loopback only.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
include:
  - monit

nginx:
  pkg.installed: []
  service.running:
    - enable: True
    - reload: True
    - require:
      - pkg: nginx

# Debian's welcome site would answer for any name; conf.d/site.conf drops those instead.
/etc/nginx/sites-enabled/default:
  file.absent:
    - require:
      - pkg: nginx
    - watch_in:
      - service: nginx

/etc/nginx/conf.d/site.conf:
  file.managed:
    - source: salt://webapp/files/nginx-site.conf.jinja
    - template: jinja
    - mode: '0644'
    - require:
      - pkg: nginx
    - watch_in:
      - service: nginx

{{ monit_check('nginx', pidfile='/run/nginx.pid', port=80, host=site.internal_ip) }}
