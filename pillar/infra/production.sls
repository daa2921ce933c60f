# Where each role lives in production. Changing the database master is changing
# `infra:hosts_entries:masterdb` here (see the VM-roles document).
infra:
  current:
    tld: webplatform.org
    internal_tld: production.wpdn
  hosts_entries:
    salt: 10.10.10.2
    source: 10.10.10.3
    mail: 10.10.10.11
    masterdb: 10.10.10.21
    db: [10.10.10.21, 10.10.10.22]
    sessions: 10.10.10.41
    memcache: 10.10.10.51
    elastic: 10.10.10.61
