# sshd on every VM, with its Monit check. The document has every VM reached through the salt
# VM (the jump box), so on the others sshd listens on the internal address only; the salt VM
# (logins and jumps) and the source VM (git over SSH) keep it public. A VM with no address
# on the internal network keeps listening everywhere rather than lock its operators out.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- set public = 'salt' in site.roles or 'source' in site.roles %}
{%- set internal_only = not public and site.on_internal_network %}
include:
  - monit

openssh-server:
  pkg.installed: []

/etc/ssh/sshd_config.d/listen.conf:
  file.managed:
    - contents: |
        # Managed by Salt (states/sshd).
        {%- if internal_only %}
        ListenAddress {{ site.internal_ip }}
        {%- else %}
        # Reachable from outside: {{ 'the jump box and git hosting' if public else 'no internal address' }}.
        {%- endif %}
    - mode: '0644'
    - require:
      - pkg: openssh-server

ssh:
  service.running:
    - enable: True
    - require:
      - pkg: openssh-server
    - watch:
      - file: /etc/ssh/sshd_config.d/listen.conf

{{ monit_check('sshd', service='ssh', pidfile='/run/sshd.pid', port=22, host=site.internal_ip) }}
