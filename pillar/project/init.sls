# The project tracker (project role): The Bug Genie at <subdomain>.<tld>.
include:
  - private.databases.tracker

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
    php_values:
      # PHP sessions on the sessions VM's Memcached (sessions:port in infra:hosts_entries).
      session.save_handler: memcached
      session.save_path: sessions:11211
  db:
    # The /etc/hosts name of the database master (infra:hosts_entries:masterdb).
    host: masterdb
    name: tracker
    user: tracker
    table_prefix: tbg3_
