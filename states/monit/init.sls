# Monit watches every service of every VM (each role adds its checks with monit/check.jinja)
# and serves its dashboard on port 2812 of the internal network only.
{%- from 'site.jinja' import site with context %}
monit:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: monit

/etc/monit/conf.d/webinterface:
  file.managed:
    - source: salt://monit/files/webinterface.jinja
    - template: jinja
    - mode: '0600'
    - context:
        address: {{ site.internal_ip }}
        allow: {{ site.internal_cidr }}
        httpd: {{ salt['pillar.get']('monit:httpd', {})|yaml }}
    - require:
      - pkg: monit
    - watch_in:
      - service: monit

# Failed checks are mailed through the VM's own MTA (exim4, or Postfix on the mail VM).
/etc/monit/conf.d/alerts:
  file.managed:
    - source: salt://monit/files/alerts.jinja
    - template: jinja
    - mode: '0600'
    - context:
        sender: monit@{{ site.tld }}
        recipient: {{ salt['pillar.get']('monit:alert_to', 'ops') }}@{{ site.tld }}
    - require:
      - pkg: monit
    - watch_in:
      - service: monit
