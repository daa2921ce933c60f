# Where each role lives in staging. Only source.webplatform.org is a source of truth, so
# staging pulls from the production source VM.
infra:
  current:
    tld: webplatformstaging.org
    internal_tld: staging.wpdn
  network:
    internal: 10.20.10.0/24
  hosts_entries:
    salt: 10.20.10.2
    source: 10.10.10.3
    mail: 10.20.10.11
    masterdb: 10.20.10.21
    sessions: 10.20.10.41
    memcache: 10.20.10.51
    elastic: 10.20.10.61
