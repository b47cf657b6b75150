#!/usr/bin/env bash
# Runs all of Floe's tests on a fresh machine: installs what they need (Debian packages, a Python
# venv with the real Kafka clients), runs the Rust tests, then drives the real `floe` binary with
# librdkafka (confluent-kafka, kcat), kafka-python, aiokafka and the Java client.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v kcat >/dev/null || need+=(kcat)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v protoc >/dev/null || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/duration.proto ] || need+=(libprotobuf-dev)
command -v psql >/dev/null || need+=(postgresql)
command -v etcd >/dev/null || need+=(etcd-server)
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

# A real S3 API on loopback for the storage engine's S3 tests.
MOTO_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
"$VENV/bin/python" - "$MOTO_PORT" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}", timeout=1); sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto_server did not start")
PY
export FLOE_TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Binaries (floe, the datafusion-query example) built with the tests' feature set (dev-dependencies
# included), so `cargo test` reuses every artifact instead of building the workspace twice.
cargo build --workspace --bins --tests
cargo test --workspace
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export FLOE_BIN="$TARGET_DIR/debug/floe"
export FLOE_DATAFUSION_QUERY="$TARGET_DIR/debug/datafusion-query"
export FLOE_FUZZ="$TARGET_DIR/debug/floe-fuzz"
# A short fuzz smoke of every target (the long run: see fuzz/README.md).
# Paths given, not the compiled-in defaults: a target dir shared by two clones may hold either's.
"$FLOE_FUZZ" all --execs "${FLOE_FUZZ_SMOKE_EXECS:-20000}" --seed "${FLOE_FUZZ_SEED:-1}" \
    --corpus fuzz/corpus --regressions fuzz/regressions --crashes fuzz/crashes
"$VENV/bin/pytest" -q -p no:warnings -p no:cacheprovider integration-tests "$@"
