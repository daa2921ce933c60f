# Monit on every VM; its web view listens on the internal network only (port 2812), e.g.
# http://app1:2812/ through the salt VM's SOCKS proxy.
monit:
  # Who Monit mails when a check fails: <alert_to>@<the level's tld>, through the VM's MTA.
  alert_to: ops
  httpd:
    port: 2812
    user: admin
