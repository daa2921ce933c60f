{#- salt/key: salt-key (or a wheel reaction) accepted, rejected or deleted a VM's key.
    Every VM's /etc/hosts (states/hosts) and the salt VM's DNS zones (states/salt) are built
    from the mine's network.ip_addrs, so the site follows a VM joining or leaving:
    - accepted: every VM sends its addresses to the mine again (the new VM sends its own
      when it starts; see minion_start.sls), then the hosts files and the zones are rebuilt;
    - rejected or deleted: the master has already dropped that VM's cached data, its mine
      with it (Salt's check_minion_cache does the same), so rebuilding the hosts files and
      the zones is what is left. A rejected VM cannot run anything itself, which is why
      nothing is sent to it. -#}
{%- if data.get('result') and data.get('act') == 'accept' %}
mine_send_addresses:
  local.mine.send:
    - tgt: '*'
    - args:
      - name: network.ip_addrs
{%- endif %}
{%- if data.get('result') and data.get('act') in ['accept', 'reject', 'delete'] %}

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
