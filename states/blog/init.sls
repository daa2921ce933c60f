# blog: the WebPlatform blog at blog.<tld>. The document leaves the role blank; assumed from
# what the site ran: WordPress, here Debian's `wordpress` package, on the shared nginx +
# PHP-FPM base (webapp). Only nginx is public (80, and 443 when `blog:tls` names a
# certificate); PHP-FPM listens on a Unix socket. Its database is `masterdb`. Monit watches
# nginx and PHP-FPM (webapp).
{%- from 'site.jinja' import site with context %}
{%- from 'webapp/map.jinja' import webapp with context %}
{%- from 'webapp/vhost.jinja' import vhost with context %}
{%- from 'webapp/database.jinja' import with_db_password with context %}
{%- set blog = salt['pillar.get']('blog', {}) %}
{%- do with_db_password(blog.db) %}
{%- set server_name = blog.get('subdomain', 'blog') ~ '.' ~ site.tld %}
include:
  - webapp

wordpress:
  pkg.installed:
    - pkgs:
      - wordpress
      - wordpress-theme-twentytwentythree
      - php{{ webapp.php_version }}-curl
    # Its Recommends would bring every translation; the blog is in English.
    - install_recommends: False
    - require:
      - pkg: php-fpm
      - pkg: nginx

# Debian's wp-config.php reads /etc/wordpress/config-<WORDPRESS_CONFIG>.php; the vhost sets
# WORDPRESS_CONFIG to `blog`, so the file does not depend on the Host header.
/etc/wordpress/config-blog.php:
  file.managed:
    - source: salt://blog/files/config-blog.php.jinja
    - template: jinja
    - user: root
    - group: www-data
    - mode: '0640'
    - context:
        home: {{ 'https' if blog.get('tls') else 'http' }}://{{ server_name }}
        db: {{ blog.get('db', {})|yaml }}
        keys: {{ blog.get('keys', {})|yaml }}
    - require:
      - pkg: wordpress

{{ vhost('blog', server_name,
         source='salt://blog/files/nginx.conf.jinja',
         root='/usr/share/wordpress',
         php=blog.get('php', {}),
         tls=blog.get('tls'),
         options={'max_body': blog.get('max_upload', '20m')}) }}
