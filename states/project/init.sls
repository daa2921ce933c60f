# project: the project tracker at project.<tld>. The document leaves the role blank; assumed:
# a PHP issue tracker, The Bug Genie (3.x layout), deployed with git from the source VM into
# /srv/webapps/project and run on the shared nginx + PHP-FPM base (webapp), in a PHP-FPM pool
# of its own user. Only nginx is public (80, and 443 when `project:tls` names a
# certificate); PHP-FPM listens on a Unix socket. Its database is `masterdb`; its PHP
# sessions go to the sessions VM's Redis, with its password (php-redis; the sessions VM's
# Memcached wants ASCII authentication, which no PHP session handler sends). Monit watches
# nginx and PHP-FPM (webapp).
# The schema is created once by the tracker's web installer, with the settings below.
{%- from 'site.jinja' import site with context %}
{%- from 'webapp/map.jinja' import webapp with context %}
{%- from 'webapp/vhost.jinja' import vhost with context %}
{%- from 'webapp/deploy.jinja' import git_deploy with context %}
{%- from 'webapp/database.jinja' import with_db_password with context %}
{%- set project = salt['pillar.get']('project', {}) %}
{%- do with_db_password(project.db) %}
{%- set sessions = project.get('sessions', {}) %}
{%- set session_password = salt['pillar.get']('sessions:redis:password', '') %}
{%- set php_values = project.php.get('php_values', {}) %}
{%- do php_values.update({
      'session.save_handler': 'redis',
      'session.save_path': 'tcp://' ~ sessions.get('host', 'sessions') ~ ':' ~ sessions.get('port', 6379)
                           ~ '?' ~ {'auth': session_password}|urlencode}) %}
{%- do project.php.update({'php_values': php_values}) %}
{%- set home = '/srv/webapps/project' %}
{%- set php = 'php' ~ webapp.php_version %}
include:
  - webapp
  - webapp.deploy

project-php-modules:
  pkg.installed:
    - pkgs:
      - {{ php }}-mysql
      - {{ php }}-gd
      - {{ php }}-mbstring
      - {{ php }}-xml
      - {{ php }}-curl
      - php-redis
    - require:
      - pkg: php-fpm
    - watch_in:
      - service: php-fpm

# The tracker runs as its own user, which owns its code, caches and uploaded files.
project:
  user.present:
    - system: True
    - home: {{ home }}
    - createhome: False
    - shell: /usr/sbin/nologin
    # PHP-FPM refuses a pool whose user does not exist yet.
    - require_in:
      - file: webapp-pool-project

{{ git_deploy('project', project.source.repo, project.source.rev, home, 'project') }}

{{ home }}/core/b2db_bootstrap.inc.php:
  file.managed:
    - source: salt://project/files/b2db_bootstrap.inc.php.jinja
    - template: jinja
    - user: root
    - group: project
    - mode: '0640'
    - context:
        db: {{ project.db|yaml }}
    - require:
      - cmd: project-deploy

{{ vhost('project', project.get('subdomain', 'project') ~ '.' ~ site.tld,
         source='salt://project/files/nginx.conf.jinja',
         root=home ~ '/thebuggenie',
         php=project.php,
         tls=project.get('tls'),
         options={'max_body': project.get('max_upload', '20m')}) }}
