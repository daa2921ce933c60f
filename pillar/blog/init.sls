# The blog (blog role): WordPress at <subdomain>.<tld>.
blog:
  subdomain: blog
  # To serve HTTPS (port 80 then redirects), name a certificate and key installed on the VM:
  # tls: {certificate: /etc/ssl/certs/webplatform.pem, key: /etc/ssl/private/webplatform.key}
  max_upload: 20m
  php:
    max_children: 10
    php_admin_values:
      memory_limit: 128M
      upload_max_filesize: 20M
      post_max_size: 20M
  db:
    # The /etc/hosts name of the database master (infra:hosts_entries:masterdb).
    host: masterdb
    name: wpblog
    user: wpblog
    table_prefix: wp_
