# Where each role lives in production. Changing the database master is changing
# `infra:hosts_entries:masterdb` here (docs/site.md, "Changing the MariaDB replication master").
infra:
  current:
    tld: webplatform.org
    internal_tld: production.wpdn
  network:
    # The private network every VM has an address on; internal services bind there only.
    internal: 10.10.10.0/24
  hosts_entries:
    salt: 10.10.10.2
    source: 10.10.10.3
    mail: 10.10.10.11
    masterdb: 10.10.10.21
    sessions: 10.10.10.41
    memcache: 10.10.10.51
    elastic: 10.10.10.61
