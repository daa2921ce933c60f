{%- set is_master = 'masterdb' in grains.get('roles', []) %}
mariadb:
  server_id: {{ grains.get('num_cpus', 1) * 100 + (grains['id']|length) }}
  replication:
    role: {{ 'master' if is_master else 'replica' }}
    ssl: true
