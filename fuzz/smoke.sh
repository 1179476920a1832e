#!/usr/bin/env bash
# A short run of every fuzz target (CI): each target runs for GSMGW_FUZZ_SECS seconds (default
# 20) over its committed seeds, with AddressSanitizer. A crash, a leak, a hang over 10 s or an
# input that needs over 2 GiB fails the run. New inputs go to a temporary corpus, so the work
# tree stays clean. Installs cargo-fuzz when it is missing (about 2 minutes).
#
# The build and cargo-fuzz's own target dir live outside the clone (GSMGW_FUZZ_TARGET_DIR,
# default /var/cache/gsmgw/target-fuzz) so later runs on the same machine reuse them.
set -euo pipefail
cd "$(dirname "$0")"
secs="${GSMGW_FUZZ_SECS:-20}"
target_dir="${GSMGW_FUZZ_TARGET_DIR:-/var/cache/gsmgw/target-fuzz}"
mkdir -p "$target_dir"
# cargo-fuzz passes nightly-only flags; the stable toolchain accepts them with this set.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: installing cargo-fuzz"
    CARGO_TARGET_DIR="$target_dir/install" cargo install cargo-fuzz --version 0.13.2 --locked
fi

targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^gsmgw-fuzz$')
nice -n 5 cargo fuzz build -O --target-dir "$target_dir" >/dev/null
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for t in $targets; do
    mkdir -p "$corpus/$t"
    out="$corpus/$t.log"
    if ! cargo fuzz run -O --target-dir "$target_dir" "$t" "$corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -workers=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$out" 2>&1; then
        tail -n 60 "$out"
        echo "fuzz/smoke.sh: $t FAILED (the input is in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    echo "fuzz/smoke.sh: $t: ${runs:-?} runs in ${secs} s, no crash"
done
