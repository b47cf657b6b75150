"""Replays real Debezium change events (shared/fixtures/debezium) into an upsert Table Topic, with the
keys and tombstones Debezium sends, and shows the Iceberg table equal to the source table.

    python examples/debezium-cdc/replay.py            # against `floe serve` on the default ports
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.environ.get("FLOE_DEBEZIUM_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures", "debezium"))
KEY_SCHEMA = {"type": "struct", "optional": False, "name": "fullfillment.inventory.products.Key",
              "fields": [{"type": "int32", "optional": False, "field": "id"}]}
TT = "automq.table.topic."


def events(path):
    """The change events of a .jsonl capture, one JSON text per event."""
    with open(path) as f:
        return [line for line in f.read().splitlines() if line.strip()]


def envelope(line):
    """The Debezium envelope of an event, with or without the Connect schema around it."""
    v = json.loads(line)
    return v["payload"] if "payload" in v and "schema" in v else v


def source_table(lines, last_deleted_id):
    """What the source table holds after the events: (id, name, description, weight) rows."""
    rows = {}
    for line in lines:
        e = envelope(line)
        if e["op"] == "d":
            rows.pop((e["before"] or {}).get("id", last_deleted_id), None)
        else:
            rows[e["after"]["id"]] = e["after"]
    return sorted((r["id"], r["name"], r["description"], round(r["weight"], 4)) for r in rows.values())


def debezium_records(lines, with_key_schema, last_deleted_id):
    """(key, value) as Debezium's JSON converter sends them: a key per event, a tombstone after each delete."""
    out = []
    for line in lines:
        e = envelope(line)
        image = e["after"] or e["before"] or {"id": last_deleted_id}
        key = {"schema": KEY_SCHEMA, "payload": {"id": image["id"]}} if with_key_schema else {"id": image["id"]}
        key = json.dumps(key).encode()
        out.append((key, line.encode()))
        if e["op"] == "d":
            out.append((key, None))
    return out


def table_rows(catalog_url, topic):
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import NoSuchTableError
    try:
        rows = RestCatalog("floe", uri=catalog_url).load_table(("default", topic)).scan().to_arrow().to_pylist()
    except NoSuchTableError:
        return []
    return sorted((r["id"], r["name"], r["description"], round(r["weight"], 4)) for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--catalog", default="http://127.0.0.1:8181")
    ap.add_argument("--fixture", default=os.path.join(FIXTURES, "postgres-schema-include.jsonl"))
    ap.add_argument("--topic", default="dbz_products")
    ap.add_argument("--timeout-s", type=float, default=60)
    a = ap.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    lines = events(a.fixture)
    with_schema = "schema" in json.loads(lines[0])
    expected = source_table(lines, 111)
    config = {TT + "enable": "true", TT + "commit.interval.ms": "1000", TT + "convert.value.type": "json",
              TT + "convert.key.type": "json", TT + "transform.value.type": "flatten_debezium",
              TT + "id.columns": "[_from_debezium_key_]"}
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    admin.create_topics([NewTopic(a.topic, num_partitions=1, replication_factor=1, config=config)])[a.topic].result(timeout=15)
    p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for key, value in debezium_records(lines, with_schema, 111):
        p.produce(a.topic, key=key, value=value)
    if p.flush(30) != 0:
        sys.exit("replay: records were not acknowledged")
    print(f"replayed {len(lines)} change events from {os.path.basename(a.fixture)} into topic {a.topic}")

    deadline = time.time() + a.timeout_s
    got = table_rows(a.catalog, a.topic)
    while got != expected and time.time() < deadline:
        time.sleep(0.5)
        got = table_rows(a.catalog, a.topic)
    print(f"{'id':>4}  {'name':<20} {'weight':>7}   (table default.{a.topic}, read with pyiceberg)")
    for r in got:
        print(f"{r[0]:>4}  {r[1]:<20} {r[3]:>7}")
    if got != expected:
        sys.exit(f"replay: the table differs from the source table; expected {expected}")
    print(f"the table equals the source table: {len(expected)} rows")


if __name__ == "__main__":
    main()
