#!/usr/bin/env bash
# The part of Kafka's kafka-acls.sh that librdkafka's tests 0115 and 0119 call (--add with one
# principal, operation, host and topic), done with `floe acl add`. FLOE_BIN names the binary.
set -euo pipefail
bootstrap=""; perm=""; principal=""; op=""; host="*"; topic=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) bootstrap=$2; shift 2 ;;
    --add) shift ;;
    --allow-principal) perm=--allow; principal=$2; shift 2 ;;
    --deny-principal) perm=--deny; principal=$2; shift 2 ;;
    --allow-host|--deny-host) host=$2; shift 2 ;;
    --operation) op=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    *) echo "kafka-acls.sh shim: unsupported argument $1" >&2; exit 2 ;;
  esac
done
exec "$FLOE_BIN" acl add "$perm" "$principal" --operation "$op" --host "$host" --topic "$topic" --bootstrap "$bootstrap"
