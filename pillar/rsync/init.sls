# Modules the salt VM's rsync daemon serves to the other VMs (the document's "rsync through
# an xinetd service": each VM pulls files from it, backups included).
rsync:
  secrets_file: /etc/rsyncd.secrets
  shares:
    backups:
      path: /srv/backups
      comment: Backups every VM pushes to and pulls from
      uid: backup
      gid: backup
      read_only: false
      auth_users: [backup]
    code:
      path: /srv/code
      comment: Mirrored sources for deployments
      uid: nobody
      gid: nogroup
      read_only: true
      auth_users: [deploy]
