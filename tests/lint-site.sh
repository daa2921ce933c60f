#!/usr/bin/env bash
# Lints the site's Salt trees (states/ and pillar/) with salt-lint, installed once into a
# cached venv beside the minions'.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${HALITE_MINION_CACHE:-$HOME/.cache/halite/minions}
venv="$cache/salt-lint-0.9.2"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check salt-lint==0.9.2
  touch "$venv/.complete"
fi

mapfile -t trees < <(find states pillar -name '*.sls' | sort)
"$venv/bin/salt-lint" "${trees[@]}"
echo "salt-lint: ${#trees[@]} sls files clean"
