"""Transactions on one node: transactions/s and commit latency (p50/p99) with 1, 10 and 100
partitions per transaction, and produce throughput inside transactions against idempotent-only
produce, all in one run with the idempotent figure as the baseline. 1 KiB records, librdkafka
(confluent-kafka).

Run: FLOE_BIN=target/release/floe ~/.cache/floe/venv/bin/python bench/txn_cost.py [--seconds 10 --mib 200]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration-tests"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from conftest import Floe  # noqa: E402
from helpers import send  # noqa: E402


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def commits(bootstrap, topic, partitions, seconds):
    """Transactions of one record per partition, back to back: (txn/s, p50 ms, p99 ms)."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{partitions}", "linger.ms": 0})
    p.init_transactions(30)
    lat, n = [], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        p.begin_transaction()
        for i in range(partitions):
            p.produce(topic, b"x" * 1024, partition=i)
        p.commit_transaction(30)
        lat.append((time.perf_counter() - t0) * 1000)
        n += 1
    return n / (time.perf_counter() - start), percentile(lat, 50), percentile(lat, 99)


def throughput(bootstrap, topic, mib, txn_records):
    """MiB/s of 1 KiB records, idempotent (txn_records=0) or in transactions of that many records."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.kbytes": 262144}
    conf.update({"transactional.id": f"bench-tp-{txn_records}"} if txn_records else {"enable.idempotence": True})
    p = Producer(conf)
    if txn_records:
        p.init_transactions(30)
    value, n = b"x" * 1024, mib * 1024
    start = time.perf_counter()
    for i in range(n):
        if txn_records and i % txn_records == 0:
            if i:
                p.commit_transaction(60)
            p.begin_transaction()
        send(p, topic, value)
        p.poll(0)
    if txn_records:
        p.commit_transaction(60)
    p.flush(120)
    return mib / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--mib", type=int, default=200)
    args = ap.parse_args()
    binary = os.environ.get("FLOE_BIN", "target/release/floe")
    with tempfile.TemporaryDirectory() as d:
        floe = Floe(binary, d).start()
        try:
            admin = AdminClient({"bootstrap.servers": floe.bootstrap})
            topics = {"wide": 100, "tp-idem": 4, "tp-txn": 4}
            for f in admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
                f.result(30)
            print(f"{'partitions/txn':>15} {'txn/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for parts in (1, 10, 100):
                rate, p50, p99 = commits(floe.bootstrap, "wide", parts, args.seconds)
                print(f"{parts:>15} {rate:>8.1f} {p50:>8.2f} {p99:>8.2f}")
            idem = throughput(floe.bootstrap, "tp-idem", args.mib, 0)
            txn = throughput(floe.bootstrap, "tp-txn", args.mib, 1000)
            print(f"produce, idempotent (baseline): {idem:.1f} MiB/s")
            print(f"produce, transactions of 1000 records: {txn:.1f} MiB/s ({txn / idem * 100:.0f}% of the baseline)")
        finally:
            floe.stop()


if __name__ == "__main__":
    main()
