# PLACEHOLDER secrets. The real ones live outside this repository; see private/README.
blog:
  # WordPress's keys and salts: https://api.wordpress.org/secret-key/1.1/salt/ makes a set.
  keys:
    auth_key: CHANGE-ME-blog-auth-key
    secure_auth_key: CHANGE-ME-blog-secure-auth-key
    logged_in_key: CHANGE-ME-blog-logged-in-key
    nonce_key: CHANGE-ME-blog-nonce-key
    auth_salt: CHANGE-ME-blog-auth-salt
    secure_auth_salt: CHANGE-ME-blog-secure-auth-salt
    logged_in_salt: CHANGE-ME-blog-logged-in-salt
    nonce_salt: CHANGE-ME-blog-nonce-salt
