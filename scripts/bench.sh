#!/usr/bin/env bash
# Benchmarks, each reported as a ratio against a baseline measured in the same run (never asserted):
#   1. `reprod rebuild` wall time over a raw `docker run` of the same step (a build of about 10 s);
#   2. digesting throughput of a ~1 GiB OCI layout (`reprod scan`) over `sha256sum` of the same bytes;
#   3. `reprod diff` wall time on a pair of ~1 GiB images over diffoscope on their layers (one run each).
# Usage: scripts/bench.sh [RUNS]   (default 3 runs each; medians are reported)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
runs=${1:-3}

scripts/setup.sh
cargo build --release --quiet
reprod="$top/target/release/reprod"
work=$(mktemp -d /var/tmp/reprod-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# --- 1. rebuild overhead -------------------------------------------------------------------------------------
builder=$(scripts/builder-image.sh)
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.invalid GIT_AUTHOR_DATE='2000-01-01T00:00:00Z'
export GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.invalid GIT_COMMITTER_DATE='2000-01-01T00:00:00Z'
git init -q -b main "$work/src"
cp examples/hello/build.sh examples/hello/hello.txt "$work/src/"
git -C "$work/src" add -A && git -C "$work/src" commit -q -m bench
commit=$(git -C "$work/src" rev-parse HEAD)
# About 10 s of busy shell work on this machine, then the deterministic build.
script='#!/bin/sh\nset -e\ni=0; while [ $i -lt 4000000 ]; do i=$((i+1)); done\ncd /workspace/source\n./build.sh\n'
mkdir -p "$work/scripts" "$work/checkout"
printf "$script" >"$work/scripts/run" && chmod 555 "$work/scripts/run"
git clone -q "$work/src" "$work/checkout/source"
cat >"$work/provenance.json" <<JSON
{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://tekton.dev/chains/provenance",
 "subject":[{"name":"hello","digest":{"sha256":"$(printf '0%.0s' $(seq 64))"}}],
 "predicate":{"invocation":{"parameters":[]},"recipe":{"steps":[{"entryPoint":"$script",
   "environment":{"container":"build","image":"$builder"}}]},
 "materials":[{"uri":"file://$work/src","digest":{"revision":"$commit"}}]}}
JSON
raw_times=() reprod_times=()
for _ in $(seq "$runs"); do
  t0=$(now)
  docker run --rm --userns=host --network none -v "$work/checkout:/workspace" -v "$work/scripts:/tekton/scripts:ro" \
    "$builder" /tekton/scripts/run >/dev/null
  t1=$(now)
  REPROD_SOURCE_ALLOW_FILE=true REPROD_DATA_DIR="$work/data" "$reprod" rebuild --json "$work/provenance.json" >"$work/verdict.json" || true
  t2=$(now)
  grep -q '"status": "unreproducible"' "$work/verdict.json" || { cat "$work/verdict.json" >&2; echo "bench: the rebuild did not complete" >&2; exit 1; }
  raw_times+=("$(echo "$t1 - $t0" | bc)") reprod_times+=("$(echo "$t2 - $t1" | bc)")
done
raw=$(printf '%s\n' "${raw_times[@]}" | median)
rb=$(printf '%s\n' "${reprod_times[@]}" | median)

# --- 2. digest throughput ------------------------------------------------------------------------------------
layout="$work/layout"
mkdir -p "$layout/blobs/sha256"
head -c 1G /dev/urandom >"$work/layer"
layer=$(sha256sum "$work/layer" | cut -d' ' -f1)
mv "$work/layer" "$layout/blobs/sha256/$layer"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" >"$work/c"
config=$(sha256sum "$work/c" | cut -d' ' -f1); csize=$(stat -c %s "$work/c"); mv "$work/c" "$layout/blobs/sha256/$config"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":1073741824}]}' \
  "$config" "$csize" "$layer" >"$work/m"
manifest=$(sha256sum "$work/m" | cut -d' ' -f1); msize=$(stat -c %s "$work/m"); mv "$work/m" "$layout/blobs/sha256/$manifest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' "$manifest" "$msize" >"$layout/index.json"
bytes=$(du -sb "$layout/blobs" | cut -f1)
cat "$layout"/blobs/sha256/* >/dev/null   # warm the page cache for both contenders
sum_times=() scan_times=() peak_kb=()
for _ in $(seq "$runs"); do
  t0=$(now); sha256sum "$layout"/blobs/sha256/* >/dev/null; t1=$(now)
  /usr/bin/time -f '%M' -o "$work/rss" "$reprod" scan "$layout" >/dev/null; t2=$(now)
  sum_times+=("$(echo "$t1 - $t0" | bc)") scan_times+=("$(echo "$t2 - $t1" | bc)") peak_kb+=("$(cat "$work/rss")")
done
sum=$(printf '%s\n' "${sum_times[@]}" | median)
scan=$(printf '%s\n' "${scan_times[@]}" | median)

# --- 3. image diff ---------------------------------------------------------------------------------------------
# Two single-layer layouts of 1024 files x 1 MiB; B differs in 4 files' content, 16 mtimes and one mode.
python3 - "$work/diffa" "$work/diffb" <<'PY'
import hashlib, io, json, os, random, sys, tarfile
rnd = random.Random(7)
blobs = [rnd.randbytes(1 << 20) for _ in range(1024)]
def layout(path, variant):
    os.makedirs(f"{path}/blobs/sha256")
    def put(data):
        d = hashlib.sha256(data).hexdigest()
        open(f"{path}/blobs/sha256/{d}", "wb").write(data)
        return d, len(data)
    layer_path = f"{path}/layer.tmp"
    with tarfile.open(layer_path, "w", format=tarfile.USTAR_FORMAT) as t:
        for i, data in enumerate(blobs):
            info = tarfile.TarInfo(f"data/{i:04}.bin"); info.size = len(data); info.mtime = 946684800; info.mode = 0o644
            if variant and i % 256 == 3: data = data[:-1] + b"x"
            if variant and i % 64 == 5: info.mtime += 1
            if variant and i == 1000: info.mode = 0o600
            t.addfile(info, io.BytesIO(data))
    layer = open(layer_path, "rb").read(); os.remove(layer_path)
    ld, ls = put(layer)
    cd, cs = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + ld]}}).encode())
    md, ms = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + ld, "size": ls}]}).encode())
    open(f"{path}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
    open(f"{path}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md, "size": ms}]}))

layout(sys.argv[1], False); layout(sys.argv[2], True)
PY
layer_a=$(ls -S "$work"/diffa/blobs/sha256/* | head -1); layer_b=$(ls -S "$work"/diffb/blobs/sha256/* | head -1)
cat "$layer_a" "$layer_b" >/dev/null
t0=$(now)
/usr/bin/time -f '%M' -o "$work/rss-diff" "$reprod" diff --json "$work/diffa" "$work/diffb" >"$work/diff.json" || true
t1=$(now)
/usr/bin/time -f '%M' -o "$work/rss-diffoscope" diffoscope --no-progress --text "$work/diffoscope.txt" "$layer_a" "$layer_b" >/dev/null 2>&1 || true
t2=$(now)
reprod_diff=$(echo "$t1 - $t0" | bc); diffoscope_time=$(echo "$t2 - $t1" | bc)
found=$(python3 -c "import json,sys; print(sum(json.load(open(sys.argv[1]))['summary'].values()))" "$work/diff.json")

echo
echo "rebuild: raw docker run ${raw}s, reprod rebuild ${rb}s (checkout + pull check + step + scan)"
echo "         ratio reprod/raw = $(echo "scale=3; $rb / $raw" | bc)   (aim: <= 1.10)"
echo "digest:  $(echo "scale=1; $bytes / 1048576" | bc) MiB; sha256sum ${sum}s ($(echo "scale=0; $bytes / $sum / 1048576" | bc) MiB/s), reprod scan ${scan}s ($(echo "scale=0; $bytes / $scan / 1048576" | bc) MiB/s)"
echo "         throughput ratio reprod/sha256sum = $(echo "scale=3; $sum / $scan" | bc)   (aim: >= 0.9); reprod peak RSS $(printf '%s\n' "${peak_kb[@]}" | sort -n | tail -1) KiB"
echo "diff:    2 x 1 GiB images: diffoscope ${diffoscope_time}s (peak RSS $(tail -1 "$work/rss-diffoscope") KiB), reprod diff ${reprod_diff}s (peak RSS $(tail -1 "$work/rss-diff") KiB), $found differences (21 planted)"
echo "         speed-up diffoscope/reprod = $(echo "scale=1; $diffoscope_time / $reprod_diff" | bc)   (aim: >= 20)"
