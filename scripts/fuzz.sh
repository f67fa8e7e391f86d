#!/usr/bin/env bash
# Fuzzes provenance decoding and verification (fuzz/fuzz_targets/provenance.rs) with cargo-fuzz.
#   scripts/fuzz.sh [SECONDS]   (default 600)
# Seeds from the shared corpus; crashing inputs land in fuzz/artifacts/provenance/ — copy each into
# tests/fuzz_regressions/ so tests/bad_input.rs replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seeds=fuzz/corpus/provenance
mkdir -p "$seeds"
find ../shared/corpus/provenance -type f ! -name '*.tsv' -size -1024k -exec cp -n {} "$seeds/" \;
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
RUSTC_BOOTSTRAP=1 cargo fuzz run provenance "$seeds" -- -max_total_time="$secs" -max_len=262144 -rss_limit_mb=4096 2>&1 | tee fuzz/last-run.log | grep -E "^(#[0-9]+ +(DONE|INITED)|Done|==|SUMMARY)" || true
tail -n 5 fuzz/last-run.log
