# notes: the annotation service at notes.<tld>. The document leaves the role blank; assumed:
# Hypothesis (h), the annotation service the site ran, a Python WSGI application deployed
# with git from the source VM into /srv/webapps/notes and served by Debian's gunicorn as the
# `notes` systemd service, bound to 127.0.0.1 only. nginx is its public front (80, and 443
# when `notes:tls` names a certificate). Annotations are stored on the elastic VM, accounts
# in its database on `masterdb`. Monit watches gunicorn and nginx.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'webapp/vhost.jinja' import vhost with context %}
{%- from 'webapp/deploy.jinja' import git_deploy with context %}
{%- from 'systemd/unit.jinja' import systemd_unit with context %}
{%- from 'webapp/database.jinja' import with_db_password with context %}
{%- set notes = salt['pillar.get']('notes', {}) %}
{%- do with_db_password(notes.db) %}
{%- set home = '/srv/webapps/notes' %}
{%- set port = notes.get('port', 5000) %}
include:
  - monit
  - webapp.nginx
  - webapp.deploy

notes-packages:
  pkg.installed:
    - pkgs: {{ (['gunicorn', 'python3-pastedeploy'] + notes.get('packages', []))|yaml }}

notes:
  user.present:
    - system: True
    - home: {{ home }}
    - createhome: False
    - shell: /usr/sbin/nologin

{{ git_deploy('notes', notes.source.repo, notes.source.rev, home, 'notes') }}

/etc/webapps/notes:
  file.directory:
    - mode: '0755'
    - makedirs: True

/etc/webapps/notes/notes.ini:
  file.managed:
    - source: salt://notes/files/notes.ini.jinja
    - template: jinja
    - user: root
    - group: notes
    - mode: '0640'
    - context:
        settings: {{ notes.get('settings', {})|yaml }}
        db: {{ notes.db|yaml }}
    - require:
      - file: /etc/webapps/notes
      - user: notes

/etc/webapps/notes/gunicorn.conf.py:
  file.managed:
    - source: salt://notes/files/gunicorn.conf.py.jinja
    - template: jinja
    - mode: '0644'
    - context:
        port: {{ port }}
        workers: {{ notes.get('workers', 4) }}
    - require:
      - file: /etc/webapps/notes

{{ systemd_unit('notes', 'salt://notes/files/notes.service.jinja', {'home': home, 'server_name': notes.get('subdomain', 'notes') ~ '.' ~ site.tld}) }}

notes-service:
  service.running:
    - name: notes
    - enable: True
    - require:
      - pkg: notes-packages
      - cmd: notes-daemon-reload
    - watch:
      - file: notes-unit
      - file: /etc/webapps/notes/notes.ini
      - file: /etc/webapps/notes/gunicorn.conf.py
      - cmd: notes-deploy

{{ monit_check('notes', pidfile='/run/notes/gunicorn.pid', port=port) }}

{{ vhost('notes', notes.get('subdomain', 'notes') ~ '.' ~ site.tld,
         upstream='127.0.0.1:' ~ port,
         tls=notes.get('tls')) }}
