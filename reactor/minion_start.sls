{#- salt/minion/<id>/start: a VM's minion (re)started. Its addresses may have changed (a
    new VM, a moved one): it refreshes its own mine entry and rewrites its /etc/hosts from
    everybody else's. The target is a one-name list, never a glob: an id is data from the
    event, and `*` in it must not reach every VM. -#}
refresh_own_addresses:
  local.mine.update:
    - tgt: [{{ data['id'] | yaml_dquote }}]
    - tgt_type: list

refresh_own_hosts:
  local.state.apply:
    - tgt: [{{ data['id'] | yaml_dquote }}]
    - tgt_type: list
    - args:
      - mods: hosts
