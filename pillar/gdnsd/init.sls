# DNS on the salt VM (the document's gdnsd, now halite-dns): every VM's resolv.conf points
# at it only, so it answers for its level's internal zone and forwards every other name.
{%- import_yaml 'gdnsd/zones.yaml' as zones %}
{%- set zone = grains.get('level', 'production') ~ '.wpdn' %}
gdnsd:
  zones:
    {{ zone }}: {{ zones.get(zone, {'ttl': 300, 'contact': 'hostmaster.webplatform.org'})|yaml }}
  # Assumed: the public resolvers the VMs used before; replace with the provider's own.
  forwarders: [9.9.9.9, 1.1.1.1]
