# The mail VM: Postfix relays the site's mail to the outside world, OpenDKIM signs it.
# Each level relays only for its own internal network (and loopback): never an open relay.
include:
  - private.mail
{%- set level = grains.get('level', 'production') %}
{%- set networks = {'production': '10.10.10.0/24', 'staging': '10.20.10.0/24'} %}
{%- set domains = {'production': 'webplatform.org', 'staging': 'webplatformstaging.org'} %}

mail:
  postfix:
    mynetworks:
      - 127.0.0.0/8
      - '[::1]/128'
      - {{ networks.get(level, networks.production) }}
  opendkim:
    # DNS: <selector>._domainkey.<domain> TXT "v=DKIM1; k=rsa; p=<public key>"
    selector: mail
    domain: {{ domains.get(level, domains.production) }}
