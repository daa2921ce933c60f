{#- salt/key: salt-key (or a wheel reaction) accepted a VM's key: every VM sends its
    addresses to the mine again, as the site's reactor always did. The new VM sends its own
    when it starts; each mine entry that changes sets off rebuild.sls. -#}
{%- if data.get('result') and data.get('act') == 'accept' %}
mine_send_addresses:
  local.mine.send:
    - tgt: '*'
    - args:
      - name: network.ip_addrs
{%- endif %}
