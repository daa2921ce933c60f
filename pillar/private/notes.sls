# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
notes:
  settings:
    # Signs the service's session cookies and tokens.
    secret_key: CHANGE-ME-notes-secret-key
