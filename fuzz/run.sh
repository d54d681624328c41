#!/usr/bin/env bash
# Runs both fuzz targets, seeded from the test fixtures and fuzz/seeds/ (hostile inputs), for SECONDS each (default 600).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain build
# with the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
export RUSTC_BOOTSTRAP=1
for target in campaign contacts; do
  mkdir -p "fuzz/corpus/$target"
  if [ "$target" = campaign ]; then
    cp campaigns/*.yaml tests/fixtures/broken/*/campaign.yaml "fuzz/corpus/$target/" 2>/dev/null || true
  else
    for f in campaigns/*.csv tests/fixtures/broken/*/contacts.csv; do cp "$f" "fuzz/corpus/$target/$(echo "$f" | tr / _)"; done
  fi
  seeds="fuzz/seeds/$target"; mkdir -p "$seeds"
  cargo fuzz run -O "$target" "fuzz/corpus/$target" "$seeds" -- -max_total_time="$secs" -max_len=8192 -print_final_stats=1
done
