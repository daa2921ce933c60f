# Gitolite on the source VM. Repositories live on the VM's volume (mounted at `home`), so a
# rebuilt VM keeps them. Only production's source.webplatform.org is the source of truth:
# staging's `source` entry (infra:hosts_entries) points at it.
gitolite:
  user: git
  home: /srv/git
  volume:
    device: /dev/vdb
    fstype: ext4
  # Public key of the gitolite-admin repository's owner (a public key: no secret here).
  admin_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICmo2wibn0HIcc1C60AYOaDME0PeJ/9Wdy6leAzzkNv4 gitolite-admin@example
