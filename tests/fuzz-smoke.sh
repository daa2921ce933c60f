#!/usr/bin/env bash
# A short run of every fuzz target (the envelope, Crypticle and _auth decoders, the request
# decoder against its nesting and size budgets, ZMTP, both YAML loaders, a pillar sls through
# jinja|yaml, a reaction file, a compound target against its depth and word limits, a DNS
# query to halite-dns and a zone file, and halite-rsyncd's decoders: greeting and arguments,
# file list, block sums, filter rules, token streams; halite-jumpbox's authorized_keys,
# jumpbox.yaml, forward host and roster decoders), seeded
# from fuzz/seeds (Salt's own messages, site sls files, targets). Long campaigns: `cargo fuzz run <target>` without a limit.
#
# Usage: tests/fuzz-smoke.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo fuzz passes -Z sanitizer flags; this machine has only a stable toolchain.
export RUSTC_BOOTSTRAP=1
cd fuzz
targets=0
for target in envelope crypticle auth request yaml sls zmtp reaction compound dns_query zonefile \
    rsync_handshake rsync_flist rsync_sums rsync_filter rsync_tokens authorized_keys jumpbox_config; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if ! cargo fuzz run -O "$target" "corpus/$target" seeds -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target found a crash (input saved under fuzz/artifacts/$target)"
    exit 1
  fi
  grep -E '^Done' "$log" | sed "s/^/$target: /"
  rm -f "$log"
  targets=$((targets + 1))
done
echo "fuzz smoke: $targets targets, ${secs}s each, no crash"
