#!/usr/bin/env bash
# Idempotent machine set-up for reprod: installs what is missing from Debian and starts what is not running
# (dockerd, and a docker-registry bound to 127.0.0.1), waiting until each answers. Safe to run again and again.
#
# Environment:
#   REPROD_REGISTRY   host:port of the local registry (default 127.0.0.1:5000; must be on 127.0.0.0/8)
#   REPROD_STATE_DIR  where the registry keeps its blobs and the services their logs (default /var/lib/reprod-dev)
set -euo pipefail

REGISTRY="${REPROD_REGISTRY:-127.0.0.1:5000}"
STATE_DIR="${REPROD_STATE_DIR:-/var/lib/reprod-dev}"
PACKAGES=(libssl-dev pkg-config python3-venv docker.io docker-registry apache2-utils busybox-static skopeo umoci diffoscope-minimal git curl jq ca-certificates bc time chromium socat iproute2 wrk e2fsprogs mount mmdebstrap openssh-client openssh-server openssl podman groff-base)

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

case "$REGISTRY" in 127.*:*|localhost:*) ;; *) die "REPROD_REGISTRY=$REGISTRY: the test registry must listen on 127.0.0.0/8" ;; esac
[ "$(id -u)" = 0 ] || die "run as root: it installs Debian packages and starts dockerd"

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "packages present"; return; fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's own service scripts would try to start daemons through an init system this machine may not
  # have; this script starts them itself, so block that during the install.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# True when PID is a live (not zombie) process.
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

# Step containers run in a user namespace: root in a step is an unprivileged uid on the host
# (/etc/subuid's dockremap range), never host root. reprod refuses an engine without it.
DOCKERD_ARGS=(--userns-remap=default)

userns_on() { docker info --format '{{json .SecurityOptions}}' 2>/dev/null | grep -q 'name=userns'; }

start_dockerd() {
  if docker version >/dev/null 2>&1 && userns_on; then log "dockerd answers (user namespaces on)"; return; fi
  if docker version >/dev/null 2>&1; then
    # Started without user-namespace remapping (by hand, or by an older setup.sh): restart it with it.
    local old
    old=$(cat /var/run/docker.pid 2>/dev/null || true)
    log "restarting dockerd with ${DOCKERD_ARGS[*]} (pid ${old:-?})"
    [ -n "$old" ] && kill "$old" 2>/dev/null || true
    for _ in $(seq 1 150); do docker version >/dev/null 2>&1 || break; sleep 0.2; done
    for _ in $(seq 1 150); do [ -z "$old" ] || ! alive "$old" && break; sleep 0.2; done
  fi
  mkdir -p "$STATE_DIR"
  # A dockerd killed without cleanup leaves its pid file behind, and a new one refuses to start over it.
  local pidfile=/var/run/docker.pid
  if [ -f "$pidfile" ] && ! alive "$(cat "$pidfile")"; then
    log "removing stale $pidfile"
    rm -f "$pidfile"
  fi
  log "starting dockerd (log: $STATE_DIR/dockerd.log)"
  setsid nohup dockerd "${DOCKERD_ARGS[@]}" >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 1 450); do
    docker version >/dev/null 2>&1 && userns_on && { log "dockerd answers (user namespaces on)"; return; }
    alive "$pid" || { tail -n 30 "$STATE_DIR/dockerd.log" >&2; die "dockerd exited during start-up (log above)"; }
    sleep 0.2
  done
  tail -n 30 "$STATE_DIR/dockerd.log" >&2
  die "dockerd did not answer within 90 s"
}

start_registry() {
  if curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then log "registry answers on $REGISTRY"; return; fi
  mkdir -p "$STATE_DIR/registry"
  cat >"$STATE_DIR/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
  log "starting docker-registry on $REGISTRY (log: $STATE_DIR/registry.log)"
  setsid nohup docker-registry serve "$STATE_DIR/registry.yml" >"$STATE_DIR/registry.log" 2>&1 </dev/null &
  wait_for 30 registry curl -fsS "http://$REGISTRY/v2/" || { tail -n 30 "$STATE_DIR/registry.log" >&2; die "registry did not answer on $REGISTRY within 30 s"; }
  log "registry answers on $REGISTRY"
}

# securesystemslib: the independent DSSE implementation the trust tests cross-check against. A venv keeps
# it out of the system Python; the version is pinned so a new release cannot change what "agrees" means.
# prometheus_client is the independent parser the /metrics test reads the exposition with.
SSLIB_VERSION=1.6.0
PROMCLIENT_VERSION=0.21.1
# in-toto-attestation: the in-toto and SLSA schemas every statement reprod signs is validated against.
ITA_VERSION=0.9.3
PROTOBUF_VERSION=7.36.2
# oras-py: the independent OCI client the publishing test reads verdicts back with.
ORAS_VERSION=0.2.25
# schemathesis: checks the HTTP API against its own openapi.json (tests/api_schema.rs).
SCHEMATHESIS_VERSION=4.32.5
setup_python() {
  local venv="$STATE_DIR/pyenv"
  if "$venv/bin/python" -c "
import sys, securesystemslib, prometheus_client, in_toto_attestation, oras
from importlib.metadata import version
sys.exit(securesystemslib.__version__ != '$SSLIB_VERSION' or version('prometheus_client') != '$PROMCLIENT_VERSION'
         or version('in-toto-attestation') != '$ITA_VERSION' or version('protobuf') != '$PROTOBUF_VERSION'
         or version('oras') != '$ORAS_VERSION' or version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
    log "securesystemslib $SSLIB_VERSION, prometheus_client $PROMCLIENT_VERSION, in-toto-attestation $ITA_VERSION, oras $ORAS_VERSION and schemathesis $SCHEMATHESIS_VERSION present"; return
  fi
  log "installing securesystemslib $SSLIB_VERSION, prometheus_client $PROMCLIENT_VERSION, in-toto-attestation $ITA_VERSION, oras $ORAS_VERSION and schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (package python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check "securesystemslib[crypto]==$SSLIB_VERSION" \
    "prometheus_client==$PROMCLIENT_VERSION" "in-toto-attestation==$ITA_VERSION" "protobuf==$PROTOBUF_VERSION" \
    "oras==$ORAS_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" || die "pip could not install the Python cross-check tools from PyPI"
}

# promtool, the Prometheus project's linter of the text exposition (`promtool check metrics`): taken out of
# Debian's prometheus package without installing it (which would start a Prometheus server).
setup_promtool() {
  local tool="$STATE_DIR/bin/promtool"
  if "$tool" --version >/dev/null 2>&1; then log "promtool present"; return; fi
  local dir
  dir=$(mktemp -d)
  log "extracting promtool from Debian's prometheus package into $tool"
  chmod 0777 "$dir"   # apt fetches as _apt
  ( cd "$dir" && { apt-get download -qq prometheus >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get download -qq prometheus >/dev/null; }; } ) \
    || die "apt-get download prometheus failed"
  dpkg-deb -x "$dir"/prometheus_*.deb "$dir/root"
  mkdir -p "$STATE_DIR/bin"
  install -m 0755 "$dir/root/usr/bin/promtool" "$tool.new" && mv "$tool.new" "$tool"
  rm -rf "$dir"
  "$tool" --version >/dev/null 2>&1 || die "$tool does not run"
}

# Node packages from npm, each pinned, each in a directory of its own under $STATE_DIR:
#   npm_tools DIR "WHAT IT IS FOR" PACKAGE@VERSION...
npm_tools() {
  local dir="$STATE_DIR/$1" why="$2"; shift 2
  local want have="" spec
  want="$*"
  for spec in "$@"; do
    have+="${have:+ }${spec%@*}@$(node -e "console.log(require('$dir/node_modules/${spec%@*}/package.json').version)" 2>/dev/null || echo none)"
  done
  if [ "$have" = "$want" ]; then log "$want present"; return; fi
  command -v npm >/dev/null || die "npm is needed for $why (package npm)"
  log "installing $want into $dir"
  mkdir -p "$dir"
  ( cd "$dir" && npm install --no-audit --no-fund --silent --save-exact "$@" ) || die "npm could not install $want"
}

# sigstore-js (@sigstore/verify, @sigstore/bundle): the independent implementation the served Sigstore
# bundles are verified with (tests/support/verify_bundle.js).
SIGSTORE_VERIFY_VERSION=2.1.1
SIGSTORE_BUNDLE_VERSION=3.1.0
# playwright-core: drives Debian's Chromium through the pages at phone and desktop widths
# (tests/support/browse.js); it brings no browser of its own.
PLAYWRIGHT_CORE_VERSION=1.65.2
setup_node_tools() {
  npm_tools sigstore-js "the sigstore-js cross-check" \
    "@sigstore/verify@$SIGSTORE_VERIFY_VERSION" "@sigstore/bundle@$SIGSTORE_BUNDLE_VERSION"
  npm_tools playwright "the browser tests" "playwright-core@$PLAYWRIGHT_CORE_VERSION"
}

install_missing
setup_python
setup_promtool
setup_node_tools
start_dockerd
start_registry
