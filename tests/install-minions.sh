#!/usr/bin/env bash
# Installs the salt-minion versions the end-to-end tests run against, one venv per version,
# under a cache dir that is reused when present (an install takes about a minute each).
#
# Usage: tests/install-minions.sh [CACHE_DIR]
# Prints nothing but progress; exits non-zero if any version fails to install.
set -euo pipefail

cache=${1:-${HALITE_MINION_CACHE:-$HOME/.cache/halite/minions}}
versions=(${HALITE_MINION_VERSIONS:-3006.30 3007.8 3008.5})
python=${PYTHON:-python3}

# The sdists pin or omit their dependencies in ways some mirrors cannot satisfy (3007.8 declares
# none, 3006.30/3008.5 pin a certifi not yet mirrored), so salt goes in with --no-deps and this
# list goes in beside it.
deps=(Jinja2 jmespath msgpack PyYAML MarkupSafe requests certifi distro psutil packaging==24.0
      looseversion tornado aiohttp croniter setproctitle timelib pyopenssl python-dateutil
      python-gnupg importlib-metadata zipp cryptography contextvars jaraco.text jaraco.functools
      pyzmq pycryptodomex)

mkdir -p "$cache"
for v in "${versions[@]}"; do
  venv="$cache/salt-$v"
  if [ -x "$venv/bin/salt-minion" ] && [ -f "$venv/.complete" ]; then
    echo "salt $v: cached at $venv"
    continue
  fi
  echo "salt $v: installing into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${deps[@]}"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "salt==$v"
  "$venv/bin/salt-minion" --version
  touch "$venv/.complete"
done
