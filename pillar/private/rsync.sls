# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
rsync:
  passwords:
    backup: CHANGE-ME-rsync-backup
    deploy: CHANGE-ME-rsync-deploy
