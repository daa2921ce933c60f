# The annotation service (notes role): Hypothesis at <subdomain>.<tld>.
notes:
  subdomain: notes
  # To serve HTTPS (port 80 then redirects), name a certificate and key installed on the VM:
  # tls: {certificate: /etc/ssl/certs/webplatform.pem, key: /etc/ssl/private/webplatform.key}
  source:
    # On the source VM; `rev` is a tag or a commit: changing it deploys it.
    repo: git://source/h.git
    rev: v0.4.2
  # gunicorn, on 127.0.0.1 only.
  port: 5000
  workers: 4
  # The application's Python dependencies, from Debian.
  packages:
    - python3-pyramid
    - python3-sqlalchemy
    - python3-pymysql
    - python3-elasticsearch
  # [app:main] of its PasteDeploy file; the database URL is made from `db`.
  settings:
    use: call:h.app:create_app
    # Annotations live on the elastic VM (infra:hosts_entries:elastic).
    es.host: http://elastic:9200
    es.index: annotator
  db:
    # The /etc/hosts name of the database master (infra:hosts_entries:masterdb).
    host: masterdb
    name: notes
    user: notes
