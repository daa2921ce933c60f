{%- import_yaml 'gdnsd/zones.yaml' as zones %}
gdnsd:
  zones: {{ zones|yaml }}
