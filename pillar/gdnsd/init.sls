# DNS on the salt VM (the document's gdnsd, now halite-dns): every VM's resolv.conf points
# at it first, so it answers for its level's internal zone and forwards every other name
# to infra:upstream_resolvers.
{%- import_yaml 'gdnsd/zones.yaml' as zones %}
{%- set zone = grains.get('level', 'production') ~ '.wpdn' %}
gdnsd:
  zones:
    {{ zone }}: {{ zones.get(zone, {'ttl': 300, 'contact': 'hostmaster.webplatform.org'})|yaml }}
