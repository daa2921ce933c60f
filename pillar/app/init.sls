# The docs wiki (app role): WebPlatform Docs on MediaWiki, at <subdomain>.<tld>. The jobrunner
# role includes this file too, as its job runners use the same code and configuration.
# Its secrets (private.app, private.databases.wpwiki, private.sessions) are given to the app
# and jobrunner VMs by id in top.sls. private.sessions: the wiki keeps its sessions in the
# sessions VM's Redis, with the password the sessions VM sets. Accepted: the app and jobrunner
# VMs thus hold the credentials of both session stores (Redis's one password, shared by every
# app that keeps sessions there, and Memcached's, which they do not use), as the stores hold
# session data only and answer on the internal network only.
app:
  subdomain: docs
  # To serve HTTPS (port 80 then redirects), name a certificate and key installed on the VM:
  # tls: {certificate: /etc/ssl/certs/webplatform.pem, key: /etc/ssl/private/webplatform.key}
  max_upload: 20m
  php:
    max_children: 20
    php_admin_values:
      memory_limit: 256M
      upload_max_filesize: 20M
      post_max_size: 20M
  mediawiki:
    sitename: WebPlatform Docs
    meta_namespace: WPD
    language: en
    db:
      # The /etc/hosts name of the database master (infra:hosts_entries:masterdb).
      host: masterdb
      name: wpwiki
      user: wpwiki
    # host:port lists; the names are infra:hosts_entries ones (addresses, in /etc/hosts).
    # Objects go to the memcache VM's Memcached; sessions to the sessions VM's Redis.
    object_cache: ['memcache:11211']
    sessions: ['sessions:6379']
    search: [elastic]
    # 0: jobs are left to the jobrunner VMs.
    job_run_rate: 0
    uploads: true
    license:
      url: https://creativecommons.org/licenses/by/3.0/
      text: Creative Commons Attribution 3.0
    skin: Vector
    # Extensions shipped with Debian's package.
    extensions:
      - ParserFunctions
      - Cite
      - CategoryTree
      - SyntaxHighlight_GeSHi
      - WikiEditor
      - Gadgets
