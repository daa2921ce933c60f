# accounts: the site's accounts service at accounts.<tld>. The document lists no role data;
# assumed from what the site ran: Firefox Accounts (FxA), whose Node.js servers are the
# content server (sign-in pages), the auth server (its API) and the auth server's database
# service (to MariaDB on `masterdb`). Each is deployed with git from the source VM into
# /srv/webapps/accounts/<service> and runs as the `fxa-<service>` systemd service (Debian's
# nodejs; webapp/node.jinja), listening on its pillar `host`, 127.0.0.1: the auth server and
# the database service are told so in their settings (IP_ADDRESS, HOST); the content server
# has no such setting and binds 0.0.0.0, so systemd lets it use the loopback interface only.
# None exchanges traffic with anything but loopback and the internal network. nginx is their
# only public front, one virtual host per public service. Monit watches each server and
# nginx.
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
{%- from 'webapp/node.jinja' import node_user, node_service with context %}
{%- from 'webapp/database.jinja' import db_password with context %}
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
  - webapp.node

{{ node_user('accounts', home, '/etc/webapps/accounts') }}
{%- for name, service in services|dictsort %}
{%- set unit = 'fxa-' ~ name %}
{%- set dir = home ~ '/' ~ name %}
{%- set host = service.get('host', '127.0.0.1') %}
{%- set env = {'PORT': service.port} %}
{%- if service.get('host_variable') %}
{%- do env.update({service.host_variable: host}) %}
{%- elif host != '127.0.0.1' %}
{{ raise('accounts:services:' ~ name ~ ': a server without host_variable can only be kept to 127.0.0.1') }}
{%- endif %}
{%- if name in public_urls %}
{%- do env.update({'PUBLIC_URL': public_urls[name]}) %}
{%- endif %}
{%- for variable, other in service.get('urls', {})|dictsort %}
{%- do env.update({variable: public_urls[other]}) %}
{%- endfor %}
{%- do env.update(service.get('env', {})) %}
{%- if service.database is defined %}
{%- do env.update({'MYSQL_PASSWORD': db_password(service.database),
                    'MYSQL_SLAVE_PASSWORD': db_password(service.database)}) %}
{%- endif %}

{{ node_service(unit, 'accounts', dir, service.repo, service.rev,
     command='/usr/bin/node ' ~ dir ~ '/' ~ service.script,
     prestart=('/usr/bin/node ' ~ dir ~ '/' ~ service.prestart) if service.get('prestart') else None,
     env_dir='/etc/webapps/accounts',
     env=env,
     install=service.get('install', 'npm install --production'),
     description=service.get('description', 'Firefox Accounts ' ~ name ~ ' server'),
     allow=['localhost', site.internal_cidr],
     interfaces=None if service.get('host_variable') else ['lo']) }}

{{ monit_check(unit, matching=dir ~ '/' ~ service.script, port=service.port, host=host) }}
{%- if service.get('subdomain') %}

{{ vhost('accounts-' ~ name, service.subdomain ~ '.' ~ site.tld,
         upstream=host ~ ':' ~ service.port,
         tls=accounts.get('tls'),
         listen=None if accounts.get('public', True) else site.internal_ip) }}
{%- endif %}
{%- endfor %}
