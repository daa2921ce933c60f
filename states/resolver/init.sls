# Every VM resolves names through the salt VM's DNS server (halite's gdnsd replacement).
{%- from 'site.jinja' import site with context %}
/etc/resolv.conf:
  file.managed:
    - source: salt://resolver/files/resolv.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        nameserver: {{ site.hosts.get('salt', '127.0.0.1') }}
        search: {{ site.internal_tld }}
