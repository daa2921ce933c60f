# Monit on every VM; its web view listens on the internal network only (port 2812), e.g.
# http://app1:2812/ through the salt VM's SOCKS proxy.
include:
  - private.monit

monit:
  httpd:
    port: 2812
    user: admin
