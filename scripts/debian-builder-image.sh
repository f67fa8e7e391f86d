#!/usr/bin/env bash
# Builds the Debian builder image: a bookworm minbase rootfs made by mmdebstrap with curl, wget,
# ca-certificates and skopeo, for test steps that fetch files or copy images. Pushes it to the local registry
# and prints its reference pinned by digest, e.g. 127.0.0.1:5000/reprod/debian-builder@sha256:... (the only
# line on stdout; progress goes to stderr).
#
# Idempotent and quick to re-run: the image is tagged with a key hashed from everything that decides it (mirror,
# suite, packages, mmdebstrap options, this script's code without its comments). When the registry has that
# tag, its digest is printed and nothing is built (well under a second). The rootfs tarball is cached under
# $REPROD_STATE_DIR/debian-builder/ with a key of its own (the mmdebstrap inputs only), so a wiped registry or
# a change to the image assembly below costs seconds, not another mmdebstrap run.
# Reproducible where cheap: SOURCE_DATE_EPOCH is fixed, mmdebstrap writes a name-sorted, mtime-clamped tar
# without logs or caches, and the OCI layout is written by hand with fixed timestamps and `gzip -n`: the same
# mirror content yields the same digest. (The mirror is not a snapshot, so a later run with a new key may pick
# up newer packages.)
#
# Running skopeo from this image in reprod's sandbox (read-only root, tmpfs /tmp /var/tmp /run, uid 0 mapped to
# an unprivileged host uid, no capabilities beyond CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID):
#   - /etc/containers/policy.json ({"default":[{"type":"insecureAcceptAnything"}]}) is in the image, from
#     golang-github-containers-common (written here if a package ever stops shipping it); registries.conf
#     is Debian's. Without a policy.json every skopeo copy fails.
#   - temporary files go to $TMPDIR, else /var/tmp, which must be writable: the image sets TMPDIR=/tmp.
#   - HOME need not be writable: skopeo only reads auth files (~/.docker/config.json,
#     $XDG_RUNTIME_DIR/containers/auth.json). Its blob-info cache (/var/lib/containers/cache as root,
#     ~/.local/share/containers/cache otherwise) cannot be created on the read-only root; skopeo then keeps
#     it in memory, silently. A user 1000 (`build`, HOME=/tmp) exists for steps run with --user 1000:1000.
#   - a plain-HTTP registry needs --dest-tls-verify=false (or --src-tls-verify=false / --tls-verify=false).
#   - HTTP_PROXY/HTTPS_PROXY are honoured, except for localhost and 127.0.0.0/8, which Go always reaches
#     directly: through a proxy, the registry must be named by a host that is not loopback.
#
# Environment:
#   REPROD_REGISTRY         host:port of the local registry (default 127.0.0.1:5000)
#   REPROD_STATE_DIR        where the rootfs cache lives (default /var/lib/reprod-dev, as scripts/setup.sh)
#   REPROD_DEBIAN_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   REPROD_DEBIAN_SECURITY  Debian security mirror (default http://deb.debian.org/debian-security)
#   REPROD_REBUILD=1        rebuild the rootfs and push even when the tag is present
set -euo pipefail

# The variant: `builder` (the default, described above), `buildah` (buildah, its storage the vfs driver
# on /var/lib/containers, for steps of the nested profile: see the README's sandbox section; run it with
# `--isolation chroot`), or `buildkit` (Debian 13's dockerd, whose BuildKit runs in a nested step: see
# docs/buildkit-builder.md; `reprod-buildkitd` starts it, then `docker buildx build` uses it).
VARIANT="${1:-builder}"
REGISTRY="${REPROD_REGISTRY:-127.0.0.1:5000}"
STATE_DIR="${REPROD_STATE_DIR:-/var/lib/reprod-dev}"
case "$VARIANT" in
  builder) NAME=debian-builder ;;
  buildah) NAME=debian-buildah ;;
  buildkit) NAME=debian-buildkit ;;
  *) echo "[debian-builder] error: unknown variant $VARIANT (builder, buildah or buildkit)" >&2; exit 2 ;;
esac
REPO="$REGISTRY/reprod/$NAME"
CACHE_DIR="$STATE_DIR/$NAME"
MIRROR="${REPROD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${REPROD_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
SUITE=bookworm
# Debian 12 has no BuildKit; Debian 13's docker.io has one inside dockerd.
[ "$VARIANT" = buildkit ] && SUITE=trixie
ARCH=amd64
# 2000-01-01T00:00:00Z, as scripts/builder-image.sh.
export SOURCE_DATE_EPOCH=946684800
CREATED=2000-01-01T00:00:00Z
# gpg and netavark: the smallest way to meet skopeo's dependencies on `gnupg | gpg` (gnupg would bring
# dirmngr, gpg-agent, gpgsm...) and on container-network-stack (apt's pick, containernetworking-plugins, is
# 45 MB with iptables). skopeo never runs either for a copy.
PACKAGES=(ca-certificates curl wget skopeo gpg netavark)
# buildah needs containernetworking-plugins (containers-common depends on it) even when RUN has no network.
[ "$VARIANT" = buildah ] && PACKAGES=(ca-certificates buildah containernetworking-plugins gpg)
# dockerd (BuildKit inside), the docker CLI (trixie's docker.io has none), buildx; git for git build
# contexts; iptables is a dependency dockerd is told not to use.
[ "$VARIANT" = buildkit ] && PACKAGES=(ca-certificates docker.io docker-cli docker-buildx git iptables)
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main")
POLICY_JSON='{"default":[{"type":"insecureAcceptAnything"}]}'
MMDEBSTRAP_OPTS=(
  --mode=root --variant=minbase --format=tar --architectures="$ARCH"
  --include="$(IFS=,; echo "${PACKAGES[*]}")"
  # Merged /usr made with symlinks, as debootstrap does (and Debian's own images), rather than by installing
  # the usrmerge package, which would leave perl and its modules (50 MB) in the image.
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='Apt::Install-Recommends "false"'
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  # Docker gives every container its own /dev: device nodes in a layer are of no use (and need mknod).
  --skip=output/dev
  # Docker bind-mounts its own; the host's copies would make the result differ from machine to machine.
  --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"'
  --customize-hook="[ -s \"\$1/etc/containers/policy.json\" ] || { mkdir -p \"\$1/etc/containers\"; echo '$POLICY_JSON' >\"\$1/etc/containers/policy.json\"; }"
  # An unprivileged user for steps run as 1000:1000, its home on the /tmp tmpfs.
  --customize-hook='echo "build:x:1000:1000:build:/tmp:/bin/sh" >>"$1/etc/passwd"; echo "build:x:1000:" >>"$1/etc/group"; echo "build:!:10957::::::" >>"$1/etc/shadow"; echo "build:!::" >>"$1/etc/gshadow"'
)

# buildah's storage on the tmpfs mounts a nested step gets (the root filesystem is read-only): vfs needs no
# overlay mount; graphroot on /var/lib/containers (the nested profile's tmpfs that allows exec: a RUN
# executes its image's files from there), runroot on /run.
[ "$VARIANT" = buildah ] && MMDEBSTRAP_OPTS+=(
  --customize-hook='printf "[storage]\ndriver = \"vfs\"\nrunroot = \"/run/containers/storage\"\ngraphroot = \"/var/lib/containers/storage\"\n" >"$1/etc/containers/storage.conf"'
)

# BuildKit in a nested step (docs/buildkit-builder.md): dockerd rootless, so a RUN gets no cgroup of its own
# (the host's cgroup v1 hierarchy is not writable from the step's user namespace) and stays in the step's,
# with the containerd image store (the OCI exporter needs it), its data on /var/lib/containers; a runc in
# front of Debian's that drops the three capabilities BuildKit gives a RUN by default but the nested profile's
# bounding set lacks (MKNOD, NET_RAW, AUDIT_WRITE), so the profile need not grow; `reprod-buildkitd` starts
# the daemon and waits for it. A build then runs `docker buildx build --network host ...` (host: the step's
# own loopback-only namespace; a namespace of its own would need NET_ADMIN).
[ "$VARIANT" = buildkit ] && MMDEBSTRAP_OPTS+=(
  --customize-hook='mkdir -p "$1/etc/docker" && printf "{\"features\":{\"containerd-snapshotter\":true}}\n" >"$1/etc/docker/daemon.json"'
  --customize-hook='printf "#!/bin/sh\n# reprod: drop the RUN capabilities the nested profile does not bound in.\nprev=\nfor a in \"\$@\"; do case \"\$prev\" in --bundle|-b) sed -i -E \"s/\\\"CAP_(MKNOD|NET_RAW|AUDIT_WRITE)\\\",?//g; s/,\\]/]/g\" \"\$a/config.json\";; esac; prev=\"\$a\"; done\nexec /usr/sbin/runc \"\$@\"\n" >"$1/usr/local/sbin/runc" && chmod 0755 "$1/usr/local/sbin/runc"'
  --customize-hook='printf "#!/bin/sh\n# reprod: start dockerd (its BuildKit) in a nested step and wait until it answers.\nset -e\nexport HOME=/tmp DOCKER_CONFIG=/tmp/.docker\ndockerd --rootless --config-file /etc/docker/daemon.json --iptables=false --ip6tables=false --bridge=none --data-root /var/lib/containers/docker --exec-root /tmp/docker-exec >/tmp/dockerd.log 2>&1 &\ni=0\nuntil docker version >/dev/null 2>&1; do i=\$((i+1)); if [ \$i -gt 300 ]; then cat /tmp/dockerd.log >&2; exit 1; fi; sleep 0.1; done\n" >"$1/usr/local/bin/reprod-buildkitd" && chmod 0755 "$1/usr/local/bin/reprod-buildkitd"'
)

log() { printf '[debian-builder] %s\n' "$*" >&2; }
die() { printf '[debian-builder] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: mmdebstrap --mode=root needs it"
curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 || die "no registry answers on $REGISTRY; run scripts/setup.sh"

rootfs_key=$(printf '%s\n' "$SUITE" "$ARCH" "$SOURCE_DATE_EPOCH" "${SOURCES[@]}" "${MMDEBSTRAP_OPTS[@]}" | sha256sum | cut -c1-16)
image_key=$(
  { echo "$rootfs_key"; grep -v '^[[:space:]]*#' "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16
)
TAG="$REPO:$image_key"

# The registry's digest of TAG, or nothing when it has no such tag.
registry_digest() {
  skopeo inspect --tls-verify=false --no-tags --format '{{.Digest}}' "docker://$TAG" 2>/dev/null || true
}

if [ "${REPROD_REBUILD:-}" != 1 ]; then
  digest=$(registry_digest)
  if [ -n "$digest" ]; then log "$TAG present"; echo "$REPO@$digest"; exit 0; fi
fi

mkdir -p "$CACHE_DIR"
# One build at a time; a run that waited finds the tag the other one pushed.
exec 9>"$CACHE_DIR/lock"
flock 9
if [ "${REPROD_REBUILD:-}" != 1 ]; then
  digest=$(registry_digest)
  if [ -n "$digest" ]; then log "$TAG present"; echo "$REPO@$digest"; exit 0; fi
fi

if ! command -v mmdebstrap >/dev/null; then
  log "installing mmdebstrap (scripts/setup.sh installs it too)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; } \
    || die "apt-get could not install mmdebstrap"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rootfs="$CACHE_DIR/rootfs-$rootfs_key.tar"
if [ -f "$rootfs" ] && [ "${REPROD_REBUILD:-}" != 1 ]; then
  log "rootfs $rootfs cached"
else
  log "mmdebstrap $SUITE ($ARCH, minbase + ${PACKAGES[*]}) -> $rootfs (log: $CACHE_DIR/mmdebstrap.log)"
  # mmdebstrap unpacks under TMPDIR before writing the tar; keep that on the same disk as the cache.
  TMPDIR="$work" mmdebstrap "${MMDEBSTRAP_OPTS[@]}" "$SUITE" "$work/rootfs.tar" "${SOURCES[@]}" \
    >"$CACHE_DIR/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE_DIR/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }
  case "$VARIANT" in
    builder) needed=(./usr/bin/skopeo ./usr/bin/curl ./usr/bin/wget) ;;
    buildah) needed=(./usr/bin/buildah ./etc/containers/storage.conf) ;;
    buildkit) needed=(./usr/sbin/dockerd ./usr/bin/docker ./usr/libexec/docker/cli-plugins/docker-buildx ./usr/local/sbin/runc ./usr/local/bin/reprod-buildkitd) ;;
  esac
  tar -tf "$work/rootfs.tar" ./etc/containers/policy.json ./etc/ssl/certs/ca-certificates.crt "${needed[@]}" \
    >/dev/null || die "the rootfs lacks a file the image needs"
  mv "$work/rootfs.tar" "$rootfs"
  # Rootfs tarballs of other keys are stale: keep only this one.
  find "$CACHE_DIR" -maxdepth 1 -name 'rootfs-*.tar' ! -path "$rootfs" -delete
fi

# An OCI layout written by hand (as scripts/builder-image.sh), so the same rootfs always yields the same digest.
log "assembling the OCI image"
diff_id=$(sha256sum "$rootfs" | cut -d' ' -f1)
mkdir -p "$work/oci/blobs/sha256"
gzip -n -c "$rootfs" >"$work/layer.tar.gz"
layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$work/oci/blobs/sha256/$layer_digest"
cat >"$work/config.json" <<JSON
{"architecture":"$ARCH","os":"linux","created":"$CREATED","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","TMPDIR=/tmp"],"Cmd":["/bin/sh"],"Labels":{"org.reprod.debian-builder.key":"$image_key"}},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"$CREATED","created_by":"reprod scripts/debian-builder-image.sh $VARIANT: mmdebstrap --variant=minbase $SUITE + ${PACKAGES[*]}"}]}
JSON
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$work/oci/blobs/sha256/$config_digest"
cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest_digest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
  "$manifest_digest" "$manifest_size" >"$work/oci/index.json"

log "pushing $TAG"
skopeo copy --quiet --dest-tls-verify=false --preserve-digests "oci:$work/oci" "docker://$TAG" >&2
digest=$(registry_digest)
[ "$digest" = "sha256:$manifest_digest" ] || die "the registry has $TAG as ${digest:-nothing}, pushed sha256:$manifest_digest"
log "pushed $TAG ($(( (layer_size + 524288) / 1048576 )) MiB compressed, $(( ($(stat -c %s "$rootfs") + 524288) / 1048576 )) MiB unpacked)"
echo "$REPO@$digest"
