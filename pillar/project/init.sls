# The project tracker (project role): The Bug Genie at <subdomain>.<tld>.
# Its secrets (private.databases.tracker, private.sessions) are given to the project VMs by id
# in top.sls. private.sessions: the tracker keeps its PHP sessions in the sessions VM's Redis,
# with the password the sessions VM sets. Accepted: the project VMs thus hold the credentials
# of both session stores (Redis's one password, shared by every app that keeps sessions there,
# and Memcached's, which they do not use), as the stores hold session data only and answer on
# the internal network only.
project:
  subdomain: project
  # To serve HTTPS (port 80 then redirects), name a certificate and key installed on the VM:
  # tls: {certificate: /etc/ssl/certs/webplatform.pem, key: /etc/ssl/private/webplatform.key}
  source:
    # On the source VM; `rev` is a tag or a commit: changing it deploys it.
    repo: git://source/thebuggenie.git
    rev: v3.2.7
  max_upload: 20m
  php:
    user: project
    group: project
    max_children: 10
    php_admin_values:
      memory_limit: 128M
      upload_max_filesize: 20M
      post_max_size: 20M
  # PHP sessions go to Redis on the sessions VM: `host` is its name in /etc/hosts
  # (infra:hosts_entries:sessions, an address), `port` Redis's. The state sets PHP's
  # session.save_handler and session.save_path (with the password) from them.
  sessions:
    host: sessions
    port: 6379
  db:
    # The /etc/hosts name of the database master (infra:hosts_entries:masterdb).
    host: masterdb
    name: tracker
    user: tracker
    table_prefix: tbg3_
