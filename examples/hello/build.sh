#!/bin/sh
# Builds two OCI image layouts and a plain file, bit for bit the same on every run, using only busybox.
#
#   out/hello        OCI layout: one uncompressed layer holding /hello.txt
#   out/hello-debug  OCI layout: the same plus /debug.txt
#   out/hello.txt    the file itself
#
# Usage: ./build.sh [EXTRA]   EXTRA is appended to hello.txt (tests use it to make a build nondeterministic).
set -eu
cd "$(dirname "$0")"
extra="${1:-}"
rm -rf out
mkdir -p out

# A fixed mtime, owner and mode for every file, and an explicit file order: nothing depends on the clock,
# the user or the directory order. The date is read in UTC: `touch -d` uses the local zone otherwise, and
# `reprod rebuild --vary` caught exactly that (the timezone changed the layer's mtimes).
EPOCH='2000-01-01 00:00:00'
export TZ=UTC0

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }

# layout DIR NAME FILE... : writes an OCI image layout at DIR whose single layer holds FILEs (from staging/).
layout() {
  dir=$1 name=$2; shift 2
  mkdir -p "$dir/blobs/sha256"
  tar -C staging --numeric-owner --no-recursion -cf "$dir/layer.tar" "$@"
  layer=$(sha "$dir/layer.tar"); layer_size=$(size "$dir/layer.tar")
  mv "$dir/layer.tar" "$dir/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/cat","/hello.txt"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer" >"$dir/config.json"
  config=$(sha "$dir/config.json"); config_size=$(size "$dir/config.json")
  mv "$dir/config.json" "$dir/blobs/sha256/$config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$dir/manifest.json"
  manifest=$(sha "$dir/manifest.json"); manifest_size=$(size "$dir/manifest.json")
  mv "$dir/manifest.json" "$dir/blobs/sha256/$manifest"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$manifest_size" "$name" >"$dir/index.json"
  echo "built $name: sha256:$manifest"
}

rm -rf staging
mkdir -p staging
{ cat hello.txt; [ -z "$extra" ] || echo "$extra"; } >staging/hello.txt
echo "debug build of hello" >staging/debug.txt
chown 0:0 staging/*.txt
chmod 0644 staging/*.txt
touch -d "$EPOCH" staging/*.txt

layout out/hello hello hello.txt
layout out/hello-debug hello-debug hello.txt debug.txt
cp staging/hello.txt out/hello.txt
rm -rf staging
