#!/usr/bin/env bash
# Fuzzes what reprod reads from others, with cargo-fuzz (fuzz/fuzz_targets/):
#   provenance  provenance decoding and verification (every container, real keys and a real trust root)
#   scan        the output scanner on a workspace a build shaped (a tar archive: a tarball and its tree)
#   http        the daemon's HTTP routes (a raw request: method, path, headers, body)
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   (default 600 seconds each, every target)
#
# Crashing inputs land in fuzz/artifacts/<target>/ — copy each into tests/fuzz_regressions/ so the tests
# replay it forever. Each run's executions and coverage are in fuzz/last-run-<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(provenance scan http)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seed() { # seed TARGET: the directory of seeds for TARGET, filled
  local dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $1 in
    provenance)
      find ../shared/corpus/provenance -type f ! -name '*.tsv' -size -1024k -exec cp -n {} "$dir/" \; ;;
    scan)
      # The hello example's two OCI layouts, as tar archives of the trees.
      local work
      work=$(mktemp -d)
      cp -r examples/hello "$work/src"
      (cd "$work/src" && sh ./build.sh >/dev/null)
      for l in hello hello-debug; do tar -C "$work/src/out" -cf "$dir/$l.tar" "$l"; done
      tar -C "$work/src/out/hello" -cf "$dir/hello-archive.tar" .
      rm -rf "$work" ;;
    http)
      printf 'GET /healthz HTTP/1.1\r\n\r\n' >"$dir/healthz"
      printf 'GET /v1/verdicts?status=reproducible&limit=5 HTTP/1.1\r\n\r\n' >"$dir/list"
      printf 'GET /v1/verdicts/sha256:%064d HTTP/1.1\r\n\r\n' 0 >"$dir/lookup"
      printf 'POST /v1/provenance HTTP/1.1\r\nauthorization: Bearer fuzz-token-0123456789abcdef\r\n\r\n{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x","predicate":{}}' >"$dir/submit"
      printf 'POST /v1/worker/complete HTTP/1.1\r\nauthorization: Bearer fuzz-worker-0123456789abcdef\r\n\r\n{"job":"sha256:00","token":"t","retry":"x"}' >"$dir/complete"
      printf 'GET /jobs/sha256:00 HTTP/1.1\r\n\r\n' >"$dir/page"
      printf 'GET /feed.atom?image=a%%2Fb HTTP/1.1\r\n\r\n' >"$dir/feed" ;;
  esac
  echo "$dir"
}

for t in "${targets[@]}"; do
  dir=$(seed "$t")
  echo "[fuzz] $t for ${secs}s (seeds: $dir)" >&2
  # cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$dir" -- -max_total_time="$secs" -max_len=262144 -rss_limit_mb=4096 \
    >"fuzz/last-run-$t.log" 2>&1 || {
      tail -n 30 "fuzz/last-run-$t.log"
      if grep -q "could not compile" "fuzz/last-run-$t.log"; then echo "[fuzz] $t did not build" >&2; else echo "[fuzz] $t FOUND A CRASH (fuzz/artifacts/$t/)" >&2; fi
      exit 1
    }
  grep -E "^#[0-9]+ +DONE" "fuzz/last-run-$t.log" | tail -1 || tail -n 3 "fuzz/last-run-$t.log"
done
