#!/usr/bin/env bash
# The stock rsync (client and `rsync --daemon`, the reference) halite-rsyncd's tests run
# against, from Debian, installed when missing.
set -euo pipefail
if ! command -v rsync >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync
fi
