# sshd with its Monit check, for the roles whose service is SSH itself: the salt VM (the
# jump box) and the source VM (git over SSH). One sls, so a VM with both roles has it once.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
include:
  - monit

openssh-server:
  pkg.installed: []

ssh:
  service.running:
    - enable: True
    - require:
      - pkg: openssh-server

{{ monit_check('sshd', service='ssh', pidfile='/run/sshd.pid', port=22, host=site.internal_ip) }}
