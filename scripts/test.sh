#!/usr/bin/env bash
# Runs all of Floe's tests on a fresh machine: installs what they need (Debian packages, a Python
# venv with the real Kafka clients), runs the Rust tests, then drives the real `floe` binary with
# librdkafka (confluent-kafka, kcat), kafka-python, aiokafka and the Java client.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v kcat >/dev/null || need+=(kcat)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]} (install them, or run as root)" >&2
  fi
fi

VENV=${FLOE_VENV:-$HOME/.cache/floe/venv}
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r integration-tests/requirements.txt

cargo test --workspace
cargo build --bin floe
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export FLOE_BIN="$TARGET_DIR/debug/floe"
"$VENV/bin/pytest" -q -p no:warnings -p no:cacheprovider integration-tests "$@"
