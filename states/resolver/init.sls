# Every VM resolves names through the salt VM's DNS server (halite's gdnsd replacement),
# and through the provider's resolvers when it does not answer: on a new site the salt VM's
# DNS comes up only during the first highstate, which needs names (apt) before that.
{%- from 'site.jinja' import site with context %}
/etc/resolv.conf:
  file.managed:
    - source: salt://resolver/files/resolv.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        nameservers: {{ ([site.hosts.get('salt', '127.0.0.1')] + salt['pillar.get']('infra:upstream_resolvers', []))[:3]|yaml }}
        search: {{ site.internal_tld }}
