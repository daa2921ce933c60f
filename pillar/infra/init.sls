{#- The cluster a VM belongs to: its `level` grain, production unless its name says otherwise. -#}
{%- set level = salt['grains.get']('level', 'production') %}
include:
  - infra.{{ level }}

infra:
  current:
    level: {{ level }}
    roles: {{ grains.get('roles', [])|json }}

# Every VM publishes its internal addresses to the mine; /etc/hosts and the DNS zone are
# built from them.
mine_functions:
  network.ip_addrs: []
