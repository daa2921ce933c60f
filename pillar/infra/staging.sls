infra:
  current:
    tld: webplatformstaging.org
    internal_tld: staging.wpdn
  hosts_entries:
    salt: 10.20.10.2
    source: 10.10.10.3
    mail: 10.20.10.11
    masterdb: 10.20.10.21
    db: [10.20.10.21]
    sessions: 10.20.10.41
    memcache: 10.20.10.51
    elastic: 10.20.10.61
