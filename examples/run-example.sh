#!/usr/bin/env bash
# The main job on the embedded defaults: set up the machine, make the example's git repository, builder image
# and provenance (with the real digests), then let reprod rebuild it. Prints the verdict; exits with reprod's
# exit status (0 = reproducible).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/setup.sh
work="$top/examples/hello/work"
rm -rf "$work"
mkdir -p "$work"

echo "[example] building the builder image from Debian's busybox-static" >&2
builder=$(scripts/builder-image.sh)

echo "[example] making the git repository" >&2
export GIT_AUTHOR_NAME=reprod GIT_AUTHOR_EMAIL=reprod@example.invalid GIT_AUTHOR_DATE='2000-01-01T00:00:00Z'
export GIT_COMMITTER_NAME=reprod GIT_COMMITTER_EMAIL=reprod@example.invalid GIT_COMMITTER_DATE='2000-01-01T00:00:00Z'
git init -q -b main "$work/src"
cp examples/hello/build.sh examples/hello/hello.txt examples/hello/README.md "$work/src/"
git -C "$work/src" add -A
git -C "$work/src" commit -q -m "hello: a reproducible example build"
git clone -q --bare "$work/src" "$work/hello.git"
commit=$(git -C "$work/hello.git" rev-parse main)

echo "[example] reference build with plain docker run, to learn the real digests" >&2
git clone -q "$work/hello.git" "$work/reference"
git -C "$work/reference" checkout -q "$commit"
docker run --rm --userns=host --network none -v "$work/reference:/workspace/source" "$builder" \
  /bin/sh -c 'cd /workspace/source && ./build.sh' >&2
hello=$(skopeo inspect --format '{{.Digest}}' "oci:$work/reference/out/hello")
debug=$(skopeo inspect --format '{{.Digest}}' "oci:$work/reference/out/hello-debug")
file="sha256:$(sha256sum "$work/reference/out/hello.txt" | cut -d' ' -f1)"

subject() { printf '{"name":"%s","digest":{"sha256":"%s"}}' "$1" "${2#sha256:}"; }
script='#!/bin/sh\nset -e\ncd $(workspaces.source.path)\n./build.sh\n'
cat >"$work/provenance.json" <<JSON
{
  "_type": "https://in-toto.io/Statement/v0.1",
  "predicateType": "https://tekton.dev/chains/provenance",
  "subject": [
    $(subject example.invalid/hello "$hello"),
    $(subject example.invalid/hello:v1 "$hello"),
    $(subject example.invalid/hello-debug "$debug"),
    $(subject example.invalid/hello-debug:v1 "$debug"),
    $(subject hello.txt "$file")
  ],
  "predicate": {
    "invocation": {"parameters": [], "recipe_uri": "task://hello-build", "builder.id": "example"},
    "recipe": {"steps": [{"entryPoint": "$script", "arguments": null,
      "environment": {"container": "build", "image": "$builder"}, "annotations": null}]},
    "materials": [{"uri": "file://$work/hello.git", "digest": {"revision": "$commit"}}]
  }
}
JSON
echo "[example] provenance: $work/provenance.json" >&2

cargo build --quiet
echo "[example] reprod rebuild" >&2
exec env REPROD_SOURCE_ALLOW_FILE=true REPROD_DATA_DIR="$work/data" target/debug/reprod rebuild "$work/provenance.json"
