mail:
  postfix:
    # Only the site's own networks may relay through the public SMTP port.
    mynetworks: [127.0.0.0/8, 10.10.10.0/24, 10.20.10.0/24]
  opendkim:
    domains: [webplatform.org, webplatformstaging.org]
