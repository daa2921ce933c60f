# mail: the site's SMTP relay to the outside world (Postfix), listening on the public port
# 25 but relaying only for loopback and the level's internal network (infra:network:internal). Every
# other VM's exim4 hands its mail here (states/exim4). OpenDKIM signs what leaves;
# Mailgraph graphs the traffic, its CGI served on the internal network only
# (http://mail/cgi-bin/mailgraph.cgi through the salt VM's SOCKS proxy).
# Public names with reverse DNS (from the document): mail1 is mail.<tld>, mail2 mail2.<tld>.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- set mail = salt['pillar.get']('mail', {}) %}
{%- set dkim = mail.get('opendkim', {}) %}
{%- set number = grains.get('vm_number', 1) %}
{%- set public_name = 'mail' ~ ('' if number <= 1 else number) ~ '.' ~ site.tld %}
{%- set mynetworks = ['127.0.0.0/8', '[::1]/128', site.internal_cidr] %}
{%- set dkim_key = '/etc/dkimkeys/' ~ dkim.selector ~ '.private' %}
include:
  - monit

# Postfix

postfix:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: postfix
    - watch:
      - file: /etc/postfix/main.cf

/etc/postfix/main.cf:
  file.managed:
    - source: salt://mail/files/main.cf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        myhostname: {{ public_name }}
        mynetworks: {{ mynetworks|yaml }}
        milter: inet:127.0.0.1:8891
    - require:
      - pkg: postfix

/etc/mailname:
  file.managed:
    - contents: {{ public_name }}
    - mode: '0644'

{{ monit_check('postfix', pidfile='/var/spool/postfix/pid/master.pid', port=25, host='127.0.0.1') }}

# OpenDKIM

opendkim:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: opendkim
    - watch:
      - file: /etc/opendkim.conf
      - file: opendkim-key

/etc/opendkim.conf:
  file.managed:
    - source: salt://mail/files/opendkim.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        socket: inet:8891@127.0.0.1
    - require:
      - pkg: opendkim

# Which key signs which sender's mail, and for which hosts' mail.
{%- for table in ['KeyTable', 'SigningTable', 'TrustedHosts'] %}
/etc/opendkim/{{ table }}:
  file.managed:
    - source: salt://mail/files/opendkim/{{ table }}.jinja
    - template: jinja
    - mode: '0644'
    - makedirs: True
    - context:
        selector: {{ dkim.selector }}
        domain: {{ site.tld }}
        key: {{ dkim_key }}
        mynetworks: {{ mynetworks|yaml }}
    - require:
      - pkg: opendkim
    - watch_in:
      - service: opendkim
{%- endfor %}

opendkim-key:
  file.managed:
    - name: {{ dkim_key }}
    - contents_pillar: mail:opendkim:private_key
    - user: opendkim
    - group: opendkim
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: opendkim

{{ monit_check('opendkim', pidfile='/run/opendkim/opendkim.pid', port=8891, host='127.0.0.1') }}

# Mailgraph reads Postfix's log file: Debian 12 logs to the journal only unless rsyslog is
# installed, whose default rules write mail.* to /var/log/mail.log.

rsyslog:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: rsyslog

{{ monit_check('rsyslog', matching='rsyslogd') }}

mailgraph:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: mailgraph
      - service: rsyslog

{{ monit_check('mailgraph', pidfile='/run/mailgraph.pid') }}

# The Mailgraph CGI, on the internal network only.

lighttpd:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: lighttpd
    - watch:
      - file: /etc/lighttpd/lighttpd.conf

/etc/lighttpd/lighttpd.conf:
  file.managed:
    - source: salt://mail/files/lighttpd.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        address: {{ site.internal_ip }}
        allow: {{ site.internal_cidr }}
    - require:
      - pkg: lighttpd

{{ monit_check('lighttpd', pidfile='/run/lighttpd.pid', port=80, host=site.internal_ip) }}
