#!/usr/bin/env bash
# OpenSSH from Debian for halite-jumpbox's tests: the stock `ssh` client, and `sshd` both as
# the target behind the jump box and as the reference jump host the benchmark compares with;
# curl for the SOCKS test. Installed when missing, without starting the system's sshd: the
# tests start their own, on their own ports and configs.
set -euo pipefail
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  # Debian's maintainer scripts would start sshd on port 22; policy-rc.d forbids it.
  policy=/usr/sbin/policy-rc.d
  created=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  [ -z "$created" ] || rm -f "$policy"
fi
# sshd's privilege separation needs its directory (systemd makes it at boot).
mkdir -p /run/sshd
chmod 755 /run/sshd
