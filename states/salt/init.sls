# salt: the site's control VM, on which halite runs all of the salt VM's services as
# systemd units, each with its Monit check:
#   halite-master   the Salt master: every change to every VM is made from here
#   halite-dns      DNS for the level's internal zone (replaces gdnsd; every VM's resolv.conf
#                   points here), other names forwarded
#   halite-jumpbox  SSH jump box: VMs are reached through this VM, whose login banner tells
#                   the level and the ssh command to use (sshd, on port 22, shows it too)
#   halite-rsyncd   rsync daemon every VM pulls files (backups included) from (replaces the
#                   rsync run from xinetd)
# The binaries are built from the halite repository and installed in /usr/local/bin by
# hand. halite-dns, halite-jumpbox and halite-rsyncd are written by later work: their units
# and configuration are installed now, and each service is started (and watched by Monit)
# from the first highstate after its binary lands.
{%- from 'site.jinja' import site with context %}
{%- from 'monit/check.jinja' import monit_check with context %}
{%- from 'systemd/unit.jinja' import systemd_unit with context %}
{%- set public_name = 'salt.' ~ site.tld %}
{%- set zones = salt['pillar.get']('gdnsd:zones', {}) %}
{%- set rsync = salt['pillar.get']('rsync', {}) %}
{%- set jumpbox = salt['pillar.get']('jumpbox', {}) %}
include:
  - monit
  - sshd

/etc/halite:
  file.directory:
    - mode: '0755'

# Unit files
{%- for service in ['halite-master', 'halite-dns', 'halite-jumpbox', 'halite-rsyncd'] %}

{{ systemd_unit(service, 'salt://salt/files/' ~ service ~ '.service.jinja', {'binary': '/usr/local/bin/' ~ service}) }}
{%- endfor %}

# halite-master: reads Salt's own master config.

/etc/salt/master:
  file.managed:
    - source: salt://salt/files/master.jinja
    - template: jinja
    - mode: '0644'
    - makedirs: True
    - context:
        interface: {{ site.internal_ip }}

halite-master:
  service.running:
    - enable: True
    - require:
      - cmd: halite-master-daemon-reload
    - watch:
      - file: /etc/salt/master
      - file: halite-master-unit

{{ monit_check('halite-master', matching='halite-master -c', port=4506, host=site.internal_ip) }}

# halite-dns: one RFC 1035 zone file per zone, as gdnsd read them, holding the role entry
# points (infra:hosts_entries); every VM's own name comes from the master's address book
# (dns_address_book), which halite-dns follows as keys are accepted and deleted. The reverse
# zone of the internal network holds their PTRs. A network that does not end on an octet
# boundary gets the reverse zone of the octets it fixes.
{%- set address_book = '/var/lib/halite/minion-addresses' %}
{%- set network, prefix = site.internal_cidr.split('/') %}
{%- set fixed_octets = network.split('.')[:(prefix|int) // 8] %}
{%- set reverse_zone = (fixed_octets|reverse|join('.')) ~ '.in-addr.arpa' %}
{%- set nameserver = 'salt.' ~ (zones|list|first if zones else site.internal_tld) %}

/etc/halite/dns.yaml:
  file.managed:
    - source: salt://salt/files/dns.yaml.jinja
    - template: jinja
    - mode: '0644'
    - context:
        address: {{ site.internal_ip }}
        internal_cidr: {{ site.internal_cidr }}
        zones: {{ zones|list|yaml }}
        reverse_zone: {{ reverse_zone }}
        address_book: {{ address_book }}
        forwarders: {{ salt['pillar.get']('infra:upstream_resolvers', [])|yaml }}
    - require:
      - file: /etc/halite

{%- for zone, settings in zones|dictsort %}
/etc/halite/dns/{{ zone }}.zone:
  file.managed:
    - source: salt://salt/files/zone.jinja
    - template: jinja
    - mode: '0644'
    - makedirs: True
    - context:
        zone: {{ zone }}
        nameserver: {{ nameserver }}
        ttl: {{ settings.get('ttl', 300) }}
        contact: {{ settings.contact }}
        records: {{ site.hosts|yaml }}
    - watch_in:
      - service: halite-dns
{%- endfor %}

/etc/halite/dns/{{ reverse_zone }}.zone:
  file.managed:
    - source: salt://salt/files/zone.jinja
    - template: jinja
    - mode: '0644'
    - makedirs: True
    - context:
        zone: {{ reverse_zone }}
        nameserver: {{ nameserver }}
        ttl: 300
        contact: {{ (zones.values()|list|first).contact if zones else 'hostmaster.' ~ site.tld }}
        records: {}
    - watch_in:
      - service: halite-dns

halite-dns:
  service.running:
    - enable: True
    - onlyif: test -x /usr/local/bin/halite-dns
    - require:
      - cmd: halite-dns-daemon-reload
    - watch:
      - file: /etc/halite/dns.yaml
      - file: halite-dns-unit

{%- if salt['file.file_exists']('/usr/local/bin/halite-dns') %}
{{ monit_check('halite-dns', matching='/usr/local/bin/halite-dns', port=53, host=site.internal_ip) }}
{%- endif %}

# halite-jumpbox, and the banner sshd shows on login.

/etc/ssh/banner:
  file.managed:
    - source: salt://salt/files/banner.jinja
    - template: jinja
    - mode: '0644'
    - context:
        level: {{ site.level }}
        public_name: {{ public_name }}
        internal_tld: {{ site.internal_tld }}
        socks_port: {{ jumpbox.get('socks_port', 1080) }}
        jumpbox_port: {{ jumpbox.get('port', 2222) }}

/etc/ssh/sshd_config.d/banner.conf:
  file.managed:
    - contents: Banner /etc/ssh/banner
    - mode: '0644'
    - require:
      - pkg: openssh-server
    - watch_in:
      - service: ssh

/etc/halite/jumpbox.yaml:
  file.managed:
    - source: salt://salt/files/jumpbox.yaml.jinja
    - template: jinja
    - mode: '0644'
    - context:
        port: {{ jumpbox.get('port', 2222) }}
        forward_to: {{ site.internal_cidr }}
    - require:
      - file: /etc/halite

halite-jumpbox:
  service.running:
    - enable: True
    - onlyif: test -x /usr/local/bin/halite-jumpbox
    - require:
      - cmd: halite-jumpbox-daemon-reload
    - watch:
      - file: /etc/halite/jumpbox.yaml
      - file: /etc/ssh/banner
      - file: halite-jumpbox-unit

{%- if salt['file.file_exists']('/usr/local/bin/halite-jumpbox') %}
{{ monit_check('halite-jumpbox', matching='/usr/local/bin/halite-jumpbox', port=jumpbox.get('port', 2222), host=site.internal_ip) }}
{%- endif %}

# halite-rsyncd: its configuration is in rsyncd.conf(5) form, so rsync's own daemon can read
# it too. Passwords come from the private pillar (private/rsync.sls).

{%- for name, share in rsync.get('shares', {})|dictsort %}
{{ share.path }}:
  file.directory:
    {#- Only writable shares belong to the account the daemon writes them as. #}
    - user: {{ 'root' if share.get('read_only', True) else share.uid }}
    - group: {{ 'root' if share.get('read_only', True) else share.gid }}
    - mode: '0755'
    - makedirs: True
{%- endfor %}

{{ rsync.secrets_file }}:
  file.managed:
    - source: salt://salt/files/rsyncd.secrets.jinja
    - template: jinja
    - mode: '0600'
    - show_changes: False
    - context:
        passwords: {{ rsync.get('passwords', {})|yaml }}

/etc/halite/rsyncd.conf:
  file.managed:
    - source: salt://salt/files/rsyncd.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        address: {{ site.internal_ip }}
        allow: {{ site.internal_cidr }}
        secrets_file: {{ rsync.secrets_file }}
        shares: {{ rsync.get('shares', {})|yaml }}
    - require:
      - file: /etc/halite

halite-rsyncd:
  service.running:
    - enable: True
    - onlyif: test -x /usr/local/bin/halite-rsyncd
    - require:
      - cmd: halite-rsyncd-daemon-reload
    - watch:
      - file: /etc/halite/rsyncd.conf
      - file: {{ rsync.secrets_file }}
      - file: halite-rsyncd-unit

{%- if salt['file.file_exists']('/usr/local/bin/halite-rsyncd') %}
{{ monit_check('halite-rsyncd', matching='/usr/local/bin/halite-rsyncd', port=873, host=site.internal_ip) }}
{%- endif %}
