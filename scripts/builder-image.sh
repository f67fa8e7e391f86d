#!/usr/bin/env bash
# Builds the busybox builder image from Debian's busybox-static (no public registry needed), pushes it to the
# local registry and prints its reference pinned by digest, e.g. 127.0.0.1:5000/reprod/busybox@sha256:...
#
# The image is a bare rootfs: /bin/busybox, its applets as symlinks in /bin and /usr/bin, /tmp. Idempotent:
# an image already pushed with the same content keeps its digest (the rootfs is built with fixed timestamps).
set -euo pipefail

REGISTRY="${REPROD_REGISTRY:-127.0.0.1:5000}"
REPO="$REGISTRY/reprod/busybox"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || { echo "builder-image: $BUSYBOX missing; run scripts/setup.sh" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/usr/bin" "$root/tmp" "$root/etc"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf /bin/busybox "$root/bin/$applet"
done
ln -sf /bin/busybox "$root/usr/bin/env"
printf 'root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000:build:/tmp:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nbuild:x:1000:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
find "$root" -exec touch -h -d '2000-01-01 00:00:00' {} +
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/rootfs.tar" .

# Written as an OCI layout by hand (fixed timestamps, sorted tar) and pushed with skopeo, so the same
# busybox-static always yields the same digest.
layer_digest=$(sha256sum "$work/rootfs.tar" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/rootfs.tar")
mkdir -p "$work/oci/blobs/sha256"
cp "$work/rootfs.tar" "$work/oci/blobs/sha256/$layer_digest"
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2000-01-01T00:00:00Z","config":{"Env":["PATH=/usr/bin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:$layer_digest"]},"history":[{"created":"2000-01-01T00:00:00Z","created_by":"reprod scripts/builder-image.sh: Debian busybox-static"}]}
JSON
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$work/oci/blobs/sha256/$config_digest"
cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest_digest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
  "$manifest_digest" "$manifest_size" >"$work/oci/index.json"

skopeo copy --quiet --dest-tls-verify=false --preserve-digests "oci:$work/oci" "docker://$REPO:latest" >&2
echo "$REPO@sha256:$manifest_digest"
