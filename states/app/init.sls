# app: the WebPlatform Docs wiki at docs.<tld>. The document leaves the role blank; assumed
# from what the site ran: MediaWiki (app/mediawiki.sls) on the shared nginx + PHP-FPM base
# (webapp). Only nginx is public (80, and 443 when `app:tls` names a certificate); PHP-FPM
# listens on a Unix socket. Its database is `masterdb`, sessions go to the sessions VM's
# Redis (with its password), objects to the memcache VM and search to the elastic VM
# (LocalSettings.php). The job queue is not run by web requests but by the jobrunner VMs.
# Monit watches nginx and PHP-FPM (webapp).
{%- from 'site.jinja' import site with context %}
{%- from 'webapp/vhost.jinja' import vhost with context %}
{%- set app = salt['pillar.get']('app', {}) %}
include:
  - webapp
  - app.mediawiki

{{ vhost('docs', app.get('subdomain', 'docs') ~ '.' ~ site.tld,
         source='salt://app/files/nginx.conf.jinja',
         root='/var/lib/mediawiki',
         php=app.get('php', {}),
         tls=app.get('tls'),
         options={'max_body': app.get('max_upload', '20m')}) }}
