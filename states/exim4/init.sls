# Every VM sends its mail (cron, Monit alerts) through exim4 to the `mail` VM, which relays
# it to the outside world. The mail VM itself runs Postfix instead (states/mail).
{%- from 'site.jinja' import site with context %}
{%- if 'mail' not in site.roles %}
exim4-daemon-light:
  pkg.installed: []

/etc/exim4/update-exim4.conf.conf:
  file.managed:
    - source: salt://exim4/files/update-exim4.conf.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        smarthost: {{ salt['pillar.get']('mail:smarthost', 'mail') }}
        readhost: {{ site.tld }}
    - require:
      - pkg: exim4-daemon-light

/etc/mailname:
  file.managed:
    - contents: {{ grains['id'] }}
    - mode: '0644'

update-exim4.conf:
  cmd.run:
    - onchanges:
      - file: /etc/exim4/update-exim4.conf.conf

exim4:
  service.running:
    - enable: True
    - watch:
      - cmd: update-exim4.conf
{%- endif %}
