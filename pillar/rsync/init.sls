# Modules the salt VM's rsync daemon serves to the other VMs.
rsync:
  shares:
    backups:
      path: /srv/backups
      comment: Backups every VM pulls from and pushes to
      read_only: false
      hosts_allow: [10.10.10.0/24, 10.20.10.0/24]
    code:
      path: /srv/code
      comment: Mirrored sources for deployments
      read_only: true
      hosts_allow: [10.10.10.0/24, 10.20.10.0/24]
