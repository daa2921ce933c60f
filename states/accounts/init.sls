# accounts: the site's accounts service at accounts.<tld>. The document lists no role data;
# assumed from what the site ran: Firefox Accounts (FxA), Node.js servers deployed with git
# from the source VM into /srv/webapps/accounts/<service>, each a `fxa-<service>` systemd
# service (Debian's nodejs) bound to 127.0.0.1 and allowed no traffic but loopback and the
# internal network: the content server (sign-in pages), the auth server (its API) and the
# auth server's database service (to MariaDB on `masterdb`). nginx is their only public
# front, one virtual host per public service. Monit watches each server and nginx.
#
# The document's design decision (webplatform/ops#115): "While at the moment we do expose an
# HTTP server through NGINX to the public, this VM will be eventually not visible. It is
# planned that we get the IP address it uses to make a new set of hostnames and create a
# "round robin" [...] and create a NGINX frontend proxy. This new proxy would serve content
# from internal backends to the public". So `accounts:public`: True, as now; False makes
# nginx listen on the internal address only, for the frontend proxy.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'webapp/vhost.jinja' import vhost with context %}
{%- from 'webapp/deploy.jinja' import git_deploy with context %}
{%- from 'webapp/systemd.jinja' import systemd_unit with context %}
{%- set accounts = salt['pillar.get']('accounts', {}) %}
{%- set services = accounts.get('services', {}) %}
{%- set home = '/srv/webapps/accounts' %}
{%- set scheme = 'https' if accounts.get('tls') else 'http' %}
{%- set public_urls = {} %}
{%- for name, service in services.items() if service.get('subdomain') %}
{%- do public_urls.update({name: scheme ~ '://' ~ service.subdomain ~ '.' ~ site.tld}) %}
{%- endfor %}
include:
  - monit
  - webapp.nginx
  - webapp.deploy

accounts-packages:
  pkg.installed:
    - pkgs:
      - nodejs
      - npm

accounts:
  user.present:
    - system: True
    - home: {{ home }}
    - createhome: False
    - shell: /usr/sbin/nologin

/etc/webapps/accounts:
  file.directory:
    - mode: '0755'
    - makedirs: True
{%- for name, service in services|dictsort %}
{%- set unit = 'fxa-' ~ name %}
{%- set dir = home ~ '/' ~ name %}
{%- set env = {'PORT': service.port} %}
{%- if name in public_urls %}
{%- do env.update({'PUBLIC_URL': public_urls[name]}) %}
{%- endif %}
{%- for variable, other in service.get('urls', {})|dictsort %}
{%- do env.update({variable: public_urls[other]}) %}
{%- endfor %}
{%- do env.update(service.get('env', {})) %}
{%- if service.database is defined %}
{%- do env.update({'MYSQL_PASSWORD': salt['pillar.get']('databases:' ~ service.database ~ ':password', '')}) %}
{%- endif %}

{{ git_deploy(unit, service.repo, service.rev, dir, 'accounts') }}

# Its Node.js dependencies, for the revision just deployed.
{{ unit }}-install:
  cmd.run:
    - name: {{ service.get('install', 'npm install --production') }}
    - cwd: {{ dir }}
    - runas: accounts
    - onchanges:
      - cmd: {{ unit }}-deploy
    - require:
      - pkg: accounts-packages

# Its settings (convict reads them from the environment), secrets included: root only.
/etc/webapps/accounts/{{ name }}.env:
  file.managed:
    - source: salt://accounts/files/service.env.jinja
    - template: jinja
    - mode: '0600'
    - context:
        variables: {{ env|yaml }}
    - require:
      - file: /etc/webapps/accounts

{{ systemd_unit(unit, 'salt://accounts/files/fxa.service.jinja', {
     'name': name,
     'description': service.get('description', 'Firefox Accounts ' ~ name ~ ' server'),
     'dir': dir,
     'script': service.script,
     'prestart': service.get('prestart'),
     'internal_cidr': site.internal_cidr}) }}

{{ unit }}:
  service.running:
    - enable: True
    - require:
      - cmd: {{ unit }}-daemon-reload
    - watch:
      - file: {{ unit }}-unit
      - file: /etc/webapps/accounts/{{ name }}.env
      - cmd: {{ unit }}-install

{{ monit_check(unit, matching=dir ~ '/' ~ service.script, port=service.port) }}
{%- if service.get('subdomain') %}

{{ vhost('accounts-' ~ name, service.subdomain ~ '.' ~ site.tld,
         upstream='127.0.0.1:' ~ service.port,
         tls=accounts.get('tls'),
         listen=None if accounts.get('public', True) else site.internal_ip) }}
{%- endif %}
{%- endfor %}
