{#- Every VM's /etc/hosts (states/hosts) is built from the mine's network.ip_addrs. It is
    rebuilt when
    - halite/mine/<id>/changed: a VM's mine entry was stored and differs from what it was
      (a new VM's first entry, a moved VM), fired by the master once the data is stored, so
      the rebuild reads it;
    - salt/key with act reject or delete: the master dropped that VM's cached data, its mine
      with it (Salt's check_minion_cache does the same), so the rebuild leaves it out.
    The DNS zones need no reaction: halite-dns follows the master's address book
    (dns_address_book), which the master rewrites on the same events. -#}
{%- set key_removed = tag == 'salt/key' and data.get('result') and data.get('act') in ['reject', 'delete'] %}
{%- if tag.startswith('halite/mine/') or key_removed %}
rebuild_hosts:
  local.state.apply:
    - tgt: '*'
    - args:
      - mods: hosts
{%- endif %}
