"""Table Topic ingest end to end: JSON records of 20 fields (the rows of the `translate` benchmark)
into a Table Topic of one node, against `translate`'s single-core JSON figure on the same rows
measured in the same run (its raw Arrow→Parquet write too). Two figures:
- live: produced with librdkafka (confluent-kafka) while the table commits; rows/s from the first
  produce to the snapshot holding the last record (the producer shares the machine);
- backlog: the records produced first, then the topic turned into a Table Topic; rows/s from
  that config change to the snapshot holding the last record (the pipeline alone).

Run (see bench/README.md):
  FLOE_BIN=$CARGO_TARGET_DIR/release/floe ~/.cache/floe/venv/bin/python bench/table_ingest.py [--records 1000000]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration-tests"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic  # noqa: E402
from pyiceberg.catalog.rest import RestCatalog  # noqa: E402
from pyiceberg.exceptions import NoSuchTableError  # noqa: E402

from conftest import Floe  # noqa: E402


def row(i):
    """translate.rs's `row(i)` and `json(&row)`: the same fields and values, keys sorted as serde_json writes them."""
    s = lambda k: f"value-{k}-{i * 2_654_435_761 % 100_000}"  # noqa: E731 (no i64 wrap below 3.4e9 records)
    m = {"id": i}
    for k, v in enumerate([s(1), s(2), s(3), f"user{i % 50_000}@example.com", f"https://example.com/p/{i % 997}"]):
        m[f"s{k}"] = v
    for k, v in enumerate([i * 3, i % 1000, i // 7, 1_700_000_000 + i, i ^ 0x5555, -i]):
        m[f"l{k}"] = v
    for k, v in enumerate([i * 0.5, (i % 100) / 3.0, 1.0 / (i + 1), i * 1.0001]):
        m[f"d{k}"] = v
    m["b0"], m["b1"] = i % 2 == 0, i % 3 == 0
    m["ts"] = 1_767_225_600_000 + i
    m["category"] = ["red", "green", "blue", "amber"][i % 4]
    return json.dumps(dict(sorted(m.items())), separators=(",", ":")).encode()


def translate_rate(records):
    """`cargo bench --bench translate`'s JSON line: (records/s on one core, raw Arrow→Parquet records/s)."""
    env = dict(os.environ, FLOE_BENCH_RECORDS=str(records), FLOE_BENCH_KEYS="1000")
    out = subprocess.run(["cargo", "bench", "-q", "-p", "floe-table-topic", "--bench", "translate"], cwd=os.path.join(HERE, ".."),
                         env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"json: .*?([\d.]+) records/s per core .*?raw Arrow→Parquet of the same rows: ([\d.]+) records/s", out)
    if not m:
        raise RuntimeError(f"no JSON figure in the translate output:\n{out}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--interval-ms", type=int, default=1000, help="commit.interval.ms")
    ap.add_argument("--translate-records", type=int, default=200_000)
    args = ap.parse_args()
    binary = os.environ.get("FLOE_BIN") or sys.exit("set FLOE_BIN to the floe binary")
    translate, raw = translate_rate(args.translate_records)
    values = [row(i) for i in range(args.records)]
    with tempfile.TemporaryDirectory(dir=os.environ.get("FLOE_BENCH_DIR")) as d:
        floe = Floe(binary, d).start()
        try:
            live, produced = ingest(floe, values, args)
            backlog = ingest_backlog(floe, values, args)
        finally:
            floe.stop()
    cores = os.cpu_count()
    print(f"\nTable Topic ingest, {args.records} JSON records of 20 fields, {args.partitions} partitions, commit.interval.ms={args.interval_ms}, {cores} cores")
    print(f"  translate (one core, no broker, same rows): {translate:.0f} records/s (baseline); raw Arrow→Parquet {raw:.0f} records/s")
    for name, took in (("live: first produce", live), ("backlog: table enabled", backlog)):
        rate = args.records / took
        print(f"  {name} → snapshot holding the last record: {took:.2f} s = {rate:.0f} rows/s = {rate / translate:.0%} of translate ({rate / translate / cores:.0%} per core)")
    print(f"  (the live producer alone: {args.records / produced:.0f} records/s)")


def table_configs(args):
    return {"automq.table.topic.enable": "true", "automq.table.topic.commit.interval.ms": str(args.interval_ms),
            "automq.table.topic.convert.value.type": "json", "automq.table.topic.transform.value.type": "flatten"}


def produce_all(floe, topic, values, args):
    p = Producer({"bootstrap.servers": floe.bootstrap, "linger.ms": 20, "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000,
                  "compression.type": "none", "enable.idempotence": True})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, v, partition=i % args.partitions)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0


def ingest(floe, values, args):
    """(seconds from the first produce to the last row, seconds the producer took)."""
    topic = "ingest"
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1, config=table_configs(args))])[topic].result(15)
    started = time.time()
    produce_all(floe, topic, values, args)
    produced = time.time() - started
    return wait_for_rows(floe, topic, len(values), started), produced


def ingest_backlog(floe, values, args):
    """Seconds from turning a topic holding every record into a Table Topic to its last row."""
    topic = "backlog"
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(15)
    produce_all(floe, topic, values, args)
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in table_configs(args).items()]
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    started = time.time()
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    return wait_for_rows(floe, topic, len(values), started)


def wait_for_rows(floe, topic, count, started):
    catalog = RestCatalog("floe", uri=floe.catalog_url)
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            snap = catalog.load_table(("default", topic)).current_snapshot()
        except NoSuchTableError:
            snap = None
        if snap is not None:
            offsets = json.loads(snap.summary.additional_properties.get("floe.offsets", "{}"))
            if sum(offsets.values()) >= count:
                return time.time() - started
        time.sleep(0.05)
    raise RuntimeError("the table never held the last record")


if __name__ == "__main__":
    main()
