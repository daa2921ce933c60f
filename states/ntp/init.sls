# Clocks in step across the site (replication, TLS and logs depend on it).
{%- from 'monit/check.jinja' import monit_check with context %}
include:
  - monit

chrony:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: chrony

{{ monit_check('chrony', pidfile='/run/chrony/chronyd.pid') }}
