{#- The cluster a VM belongs to: its `level` grain, production unless said otherwise. -#}
{%- set level = salt['grains.get']('level', 'production') %}
include:
  - infra.{{ level }}

infra:
  current:
    level: {{ level }}
    roles: {{ grains.get('roles', [])|yaml }}
