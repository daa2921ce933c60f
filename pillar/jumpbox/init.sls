# The salt VM is the SSH jump box: every VM is reached through it. Its login banner tells
# which level (cluster) you are on and how to reach the others.
jumpbox:
  # sshd keeps port 22 for logins to the salt VM itself; halite-jumpbox, a forwarding-only
  # SSH service, listens beside it.
  port: 2222
  # `ssh -p 2222 salt.<tld> -C -N -D 1080`: a browser pointed at this SOCKS proxy reaches the
  # internal-only reports (Monit on :2812, Mailgraph on the mail VM).
  socks_port: 1080
