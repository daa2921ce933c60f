# /etc/hosts: the role entry points of `infra:hosts_entries` (e.g. `masterdb`, which is how
# applications find the database master) and every VM's internal address from the mine.
{%- from 'site.jinja' import site with context %}
{%- from 'mine.jinja' import vm_addresses with context %}
/etc/hosts:
  file.managed:
    - source: salt://hosts/files/hosts.jinja
    - template: jinja
    - mode: '0644'
    - context:
        entries: {{ site.hosts|yaml }}
        internal_tld: {{ site.internal_tld }}
        internal_ip: {{ site.internal_ip }}
        vms: {{ vm_addresses|yaml }}
