# The accounts service (accounts role): Firefox Accounts' servers, from the source VM.
accounts:
  # nginx listens on every address; False: on the internal one only, for the frontend proxy
  # that the document plans (webplatform/ops#115).
  public: true
  # To serve HTTPS (port 80 then redirects), name a certificate and key installed on the VM:
  # tls: {certificate: /etc/ssl/certs/webplatform.pem, key: /etc/ssl/private/webplatform.key}
  # Each server: its repository on the source VM and `rev` (a tag or a commit: changing it
  # deploys it), its script, its listen `host` (127.0.0.1, the default) and `port`, and
  # `host_variable`, the setting through which the server takes its host; `subdomain` if
  # nginx serves it to the public (PUBLIC_URL is then set to it), `urls`: variables set to
  # another server's public URL, and `env`: the rest of its settings.
  services:
    content:
      description: Firefox Accounts content server (sign-in pages)
      repo: git://source/fxa-content-server.git
      rev: v0.40.0
      script: server/bin/fxa-content-server.js
      # It has no host setting: it binds 0.0.0.0 (its HTTP redirector too, on HTTP_PORT,
      # 3080), so systemd lets it use the loopback interface only, which keeps it to
      # 127.0.0.1 all the same.
      host: 127.0.0.1
      port: 3030
      subdomain: accounts
      urls:
        FXA_URL: auth
      env:
        NODE_ENV: production
    auth:
      description: Firefox Accounts auth server (API)
      repo: git://source/fxa-auth-server.git
      rev: v1.40.0
      script: bin/key_server.js
      host: 127.0.0.1
      host_variable: IP_ADDRESS
      port: 9000
      subdomain: api.accounts
      urls:
        CONTENT_SERVER_URL: content
      env:
        NODE_ENV: prod
        DB_BACKEND: httpdb
        HTTPDB_URL: http://127.0.0.1:8000
        # The VM's exim4 hands mail to the mail VM.
        SMTP_HOST: 127.0.0.1
        SMTP_PORT: 25
    authdb:
      description: Firefox Accounts auth database service (MariaDB on masterdb)
      repo: git://source/fxa-auth-db-mysql.git
      rev: v0.40.0
      # Brings the schema up to date before each start.
      prestart: bin/db_patcher.js
      script: bin/server.js
      host: 127.0.0.1
      host_variable: HOST
      port: 8000
      env:
        NODE_ENV: prod
        # The /etc/hosts name of the database master (infra:hosts_entries:masterdb).
        MYSQL_HOST: masterdb
        MYSQL_USER: fxa
        # Its reads (its `slave` pool, root@127.0.0.1 unless set) go to the master too.
        MYSQL_SLAVE_HOST: masterdb
        MYSQL_SLAVE_USER: fxa
      # Its MYSQL_PASSWORD and MYSQL_SLAVE_PASSWORD: the account's, from
      # private/databases/fxa.sls.
      database: fxa
