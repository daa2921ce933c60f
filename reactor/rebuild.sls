{#- Every VM's /etc/hosts (states/hosts) and the salt VM's DNS zones (states/salt) are built
    from the mine's network.ip_addrs. They are rebuilt when
    - halite/mine/<id>/changed: a VM's mine entry was stored and differs from what it was
      (a new VM's first entry, a moved VM), fired by the master once the data is stored, so
      the rebuild reads it;
    - salt/key with act reject or delete: the master dropped that VM's cached data, its mine
      with it (Salt's check_minion_cache does the same), so the rebuild leaves it out. -#}
{%- set key_removed = tag == 'salt/key' and data.get('result') and data.get('act') in ['reject', 'delete'] %}
{%- if tag.startswith('halite/mine/') or key_removed %}
rebuild_hosts:
  local.state.apply:
    - tgt: '*'
    - args:
      - mods: hosts

rebuild_zones:
  local.state.apply:
    - tgt: 'roles:salt'
    - tgt_type: grain
    - args:
      - mods: salt
{%- endif %}
