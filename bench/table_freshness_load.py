"""Table Topic freshness under load: librdkafka's `rdkafka_performance` produces JSON records of 20
fields (the `translate` rows' shape) at a fixed rate into a Table Topic committing every
`commit.interval.ms`; every sample period the script reads the node's own
`floe_table_topic_commit_lag_seconds` histogram (per commit: the oldest record's timestamp → the
snapshot landing, the worst delay a record of that commit saw), its commit time and the upkeep
the loop ran between commits (`floe_table_topic_maintenance_seconds`) and counts the table's live data
files and times pyiceberg's scan planning, so that file counts and planning time can be seen to
stay bounded while compaction runs, and the node's resident memory (with, at the end, what its
releases of freed heap returned: `FLOE_HEAP_RETAINED_BYTES_MAX=0` turns them off).

Run (see bench/README.md):
  FLOE_BIN=$CARGO_TARGET_DIR/release/floe ~/.cache/floe/venv/bin/python bench/table_freshness_load.py \\
      [--rate 20000] [--interval-ms 250] [--seconds 60] [--sample-seconds 10]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration-tests"))
sys.path.insert(0, HERE)

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from pyiceberg.catalog.rest import RestCatalog  # noqa: E402

from conftest import Floe  # noqa: E402
from produce import bucket_percentile, histogram, metrics, rdkafka_performance, sample  # noqa: E402
from table_ingest import row  # noqa: E402

TOPIC = "fresh-load"


def buckets(floe):
    """The node's commit lag, commit time and loop upkeep histograms of the table."""
    text = metrics(floe)
    labels = re.escape(f',topic="{TOPIC}",table=') + '"[^"]+"'
    return {name: histogram(text, f"floe_table_topic_{name}_seconds", labels) for name in ("commit_lag", "commit", "maintenance")}


def files_and_planning(catalog):
    """(live data files, seconds to load the table and plan a scan, snapshots the metadata holds)."""
    t0 = time.time()
    table = catalog.load_table(("default", TOPIC))
    tasks = list(table.scan().plan_files())
    return len(tasks), time.time() - t0, len(table.metadata.snapshots)


def rss_mb(pid):
    """The node's resident memory (VmRSS), MB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=20_000, help="records per second")
    ap.add_argument("--interval-ms", type=int, default=250, help="commit.interval.ms")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--sample-seconds", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="another topic config, e.g. automq.table.topic.expire.snapshot.older.than.hours=0")
    args = ap.parse_args()
    binary = os.environ.get("FLOE_BIN") or sys.exit("set FLOE_BIN to the floe binary")
    perf = rdkafka_performance()
    with tempfile.TemporaryDirectory(dir=os.environ.get("FLOE_BENCH_DIR")) as d:
        floe = Floe(binary, d).start()
        try:
            run(floe, perf, args)
        finally:
            floe.stop()


def run(floe, perf, args):
    cfg = {"automq.table.topic.enable": "true", "automq.table.topic.commit.interval.ms": str(args.interval_ms),
           "automq.table.topic.convert.value.type": "json", "automq.table.topic.transform.value.type": "flatten"}
    cfg.update(kv.split("=", 1) for kv in args.config)
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    admin.create_topics([NewTopic(TOPIC, args.partitions, 1, config=cfg)])[TOPIC].result(15)
    payload = row(12345).decode()
    load = subprocess.Popen([perf, "-P", "-t", TOPIC, "-b", floe.bootstrap, "-m", payload, "-s", str(len(payload)), "-a", "-1",
                             "-r", str(args.rate), "-c", str(args.rate * args.seconds), "-q", "-X", "linger.ms=5", "-X", "enable.idempotence=true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    catalog = RestCatalog("floe", uri=floe.catalog_url)
    print(f"Table Topic freshness at {args.rate} records/s, commit.interval.ms={args.interval_ms}, {args.partitions} partitions "
          f"(commit lag = oldest record's timestamp → snapshot, per commit; bounds of the node's histogram){''.join(' ' + c for c in args.config)}")
    print(f"{'t s':>6} {'commits':>8} {'lag p50 <=':>11} {'lag p99 <=':>11} {'commit p99 <=':>14} {'upkeep p99 <=':>14} "
          f"{'data files':>11} {'plan ms':>8} {'snapshots':>10} {'node RSS MB':>12}")
    start, first = time.time(), buckets(floe)
    previous = first
    while load.poll() is None:
        window_end = time.time() + args.sample_seconds
        while load.poll() is None and time.time() < window_end:
            time.sleep(0.5)
        if load.poll() is not None:
            break  # the load ended mid-window: the whole-run line below covers it
        now = buckets(floe)
        if not now["commit_lag"]:
            continue
        count = now["commit_lag"][float("inf")] - previous["commit_lag"].get(float("inf"), 0)
        files, plan, snapshots = files_and_planning(catalog)
        p50, p99 = bucket_percentile(previous["commit_lag"], now["commit_lag"], 50), bucket_percentile(previous["commit_lag"], now["commit_lag"], 99)
        commit99, upkeep99 = (bucket_percentile(previous[k], now[k], 99) for k in ("commit", "maintenance"))
        print(f"{time.time() - start:>6.0f} {count:>8.0f} {p50 * 1000:>9.0f}ms {p99 * 1000:>9.0f}ms {commit99 * 1000:>12.0f}ms {upkeep99 * 1000:>12.0f}ms "
              f"{files:>11} {plan * 1000:>8.0f} {snapshots:>10} {rss_mb(floe.proc.pid):>12.0f}")
        previous = now
    if load.returncode != 0:
        raise RuntimeError(f"rdkafka_performance failed:\n{load.stderr.read()[-2000:]}")
    time.sleep(args.interval_ms / 1000 * 4)
    end = buckets(floe)
    files, plan, snapshots = files_and_planning(catalog)
    lag_first, lag_end = first["commit_lag"], end["commit_lag"]
    print(f"whole run: {lag_end[float('inf')] - lag_first.get(float('inf'), 0):.0f} commits, commit lag p50 <= {bucket_percentile(lag_first, lag_end, 50) * 1000:.0f} ms, "
          f"p99 <= {bucket_percentile(lag_first, lag_end, 99) * 1000:.0f} ms, commit time p99 <= {bucket_percentile(first['commit'], end['commit'], 99) * 1000:.0f} ms, "
          f"upkeep p99 <= {bucket_percentile(first['maintenance'], end['maintenance'], 99) * 1000:.0f} ms; "
          f"{files} live data files, scan planned in {plan * 1000:.0f} ms, {snapshots} snapshots, node RSS {rss_mb(floe.proc.pid):.0f} MB "
          f"({heap_releases(floe)})")


def heap_releases(floe):
    """The node's releases of freed heap to the system (`heap_retained_bytes_max`), as a phrase."""
    text = metrics(floe)
    return (f"{sample(text, 'floe_heap_releases_total'):.0f} heap releases returned "
            f"{sample(text, 'floe_heap_released_bytes_total') / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
