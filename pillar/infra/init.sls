{#- The cluster a VM belongs to: its `level` grain, production unless its name says otherwise. -#}
{%- set level = salt['grains.get']('level', 'production') %}
include:
  - infra.{{ level }}

infra:
  # The provider's resolvers (assumed public ones here: replace them). halite-dns forwards
  # other names to them, and every VM falls back on them while the salt VM's DNS is down
  # or not installed yet (a new site's first highstate).
  upstream_resolvers: [9.9.9.9, 1.1.1.1]
  current:
    level: {{ level }}
    roles: {{ grains.get('roles', [])|json }}

# Every VM publishes its internal addresses to the mine; /etc/hosts and the DNS zone are
# built from them.
mine_functions:
  network.ip_addrs: []
