#!/usr/bin/env bash
# Sets up the machine (Docker engine, local registry, Debian tools) and runs every check CI runs:
# rustfmt, clippy with warnings denied, and all unit and integration tests against the real engine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The venv setup.sh fills with securesystemslib, for the DSSE cross-check.
export REPROD_PYTHON="${REPROD_PYTHON:-${REPROD_STATE_DIR:-/var/lib/reprod-dev}/pyenv/bin/python}"
echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings
echo "[test] cargo test" >&2
cargo test --all --locked -- --test-threads "${REPROD_TEST_THREADS:-2}"
