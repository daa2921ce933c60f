# What every VM of the site has, whatever its roles.
include:
  - resolver
  - hosts
  - exim4
  - monit
  - ntp
  - users
  - sudo
  - sshd
