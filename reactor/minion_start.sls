{#- salt/minion/<id>/start: a VM's minion (re)started. Its addresses may have changed (a
    new VM, a moved one): it refreshes its own mine entry and rewrites its /etc/hosts from
    everybody else's. -#}
refresh_own_addresses:
  local.mine.update:
    - tgt: {{ data['id'] | yaml_dquote }}

refresh_own_hosts:
  local.state.apply:
    - tgt: {{ data['id'] | yaml_dquote }}
    - args:
      - mods: hosts
