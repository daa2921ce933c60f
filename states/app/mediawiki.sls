# MediaWiki's code and configuration, shared by the app role (which serves the wiki) and the
# jobrunner role (which runs its job queue from the same code and LocalSettings.php).
# Assumed, as the document leaves app blank: the docs wiki is WebPlatform Docs, which ran
# MediaWiki; here Debian's `mediawiki` package, configured from the `app:mediawiki` pillar.
{%- from 'site.jinja' import site with context %}
{%- from 'webapp/map.jinja' import webapp with context %}
{%- from 'webapp/database.jinja' import with_db_password with context %}
{%- set mw = salt['pillar.get']('app:mediawiki', {}) %}
{%- do with_db_password(mw.db) %}
{%- set php = 'php' ~ webapp.php_version %}
{%- set scheme = 'https' if salt['pillar.get']('app:tls') else 'http' %}

{%- if 'app' in site.roles %}
include:
  - webapp
{%- set runtime = ['php-fpm', 'nginx'] %}
{%- else %}
# Without the app role MediaWiki runs from the command line only, and the VM serves nothing.
# The package still depends on a PHP SAPI and on a web server: php-cgi is no daemon, and
# nginx is masked first, so that not even dpkg can start it.
mediawiki-cli:
  pkg.installed:
    - pkgs:
      - {{ php }}-cli
      - {{ php }}-cgi
{%- set runtime = ['mediawiki-cli', 'nginx'] %}
{%- if not site.roles|select('in', webapp.web_roles)|list %}

nginx-masked:
  service.masked:
    - name: nginx

nginx:
  pkg.installed:
    - require:
      - service: nginx-masked
{%- endif %}
{%- endif %}

mediawiki:
  pkg.installed:
    - pkgs:
      - mediawiki
      - php-apcu
      # Sessions are kept in Redis (LocalSettings.php).
      - php-redis
      - {{ php }}-cli
      - {{ php }}-curl
      - imagemagick
      - python3-pygments
    # Its Recommends would bring a database server: the wiki's database is masterdb's.
    - install_recommends: False
    - require:
{%- for id in runtime %}
      - pkg: {{ id }}
{%- endfor %}

/etc/mediawiki/LocalSettings.php:
  file.managed:
    - source: salt://app/files/LocalSettings.php.jinja
    - template: jinja
    - user: root
    - group: www-data
    - mode: '0640'
    - context:
        mw: {{ mw|yaml }}
        server: {{ scheme }}://{{ salt['pillar.get']('app:subdomain', 'docs') }}.{{ site.tld }}
        contact: {{ mw.get('contact', 'webmaster@' ~ site.tld) }}
        session_password: {{ salt['pillar.get']('sessions:redis:password', '')|yaml_dquote }}
    - require:
      - pkg: mediawiki
