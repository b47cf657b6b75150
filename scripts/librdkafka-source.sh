#!/usr/bin/env bash
# Debian's librdkafka 2.0.2 source package, fetched and built once under $FLOE_RDK_DIR
# (~/.cache/floe/librdkafka): sourced by test-librdkafka.sh (its test suite) and by
# bench/produce.py through `scripts/librdkafka-source.sh examples` (rdkafka_performance).
WORK=${FLOE_RDK_DIR:-$HOME/.cache/floe/librdkafka}
SRC="$WORK/librdkafka-2.0.2"

# librdkafka_build PART: the libraries, then PART (`tests` or `examples`).
librdkafka_build() {
  if [ ! -f "$SRC/src/librdkafka.a" ]; then
    mkdir -p "$WORK"
    if [ "$(id -u)" = 0 ]; then
      if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        cat > /etc/apt/sources.list.d/floe-src.sources <<'SRCS'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRCS
      fi
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq librdkafka >/dev/null
    fi
    [ -d "$SRC" ] || (cd "$WORK" && apt-get source -qq librdkafka >/dev/null)
    (cd "$SRC" && ./configure --disable-gssapi >/dev/null && make -j"$(nproc)" libs >/dev/null)
  fi
  case "$1" in
    tests) (cd "$SRC" && make -j"$(nproc)" -C src-cpp >/dev/null && make -j"$(nproc)" -C tests build >/dev/null) ;;
    examples) make -j"$(nproc)" -C "$SRC/examples" rdkafka_performance >/dev/null ;;
  esac
}

# Run directly: build PART and print where its programs are.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  librdkafka_build "${1:-examples}"
  echo "$SRC"
fi
