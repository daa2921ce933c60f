# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
# Generate with `opendkim-genkey -b 2048 -s mail -d webplatform.org` (staging: its own key
# for webplatformstaging.org) and publish the .txt record it writes in the domain's DNS.
mail:
  opendkim:
    private_key: |
      -----BEGIN PRIVATE KEY-----
      CHANGE-ME-opendkim-private-key
      -----END PRIVATE KEY-----
