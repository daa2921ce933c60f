# The mail VM: Postfix relays the site's mail to the outside world, OpenDKIM signs it with
# the level's domain (infra:current:tld). Postfix relays for loopback and the level's
# internal network only (infra:network:internal): never an open relay.
mail:
  opendkim:
    # DNS: <selector>._domainkey.<tld> TXT "v=DKIM1; k=rsa; p=<public key>"
    selector: mail
