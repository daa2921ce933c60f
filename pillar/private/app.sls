# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
app:
  mediawiki:
    # $wgSecretKey: 64 hexadecimal digits.
    secret_key: CHANGE-ME-wiki-secret-key
    upgrade_key: CHANGE-ME-wiki-upgrade-key
