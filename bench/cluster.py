"""Cluster: three brokers on one bucket and one etcd (Debian's etcd-server), object WAL, under a
steady idempotent acks=all load from librdkafka. Prints:
- produce latency p50/p99 (send → delivery callback) without moves (the baseline of the same
  run), then while partitions move back and forth one after another;
- planned move time p50/p99: `floe partition move --wait` (ask → the new owner named in etcd),
  and ask → the first record sent after that acknowledged (the new owner serving);
- failover after SIGKILL of a broker: kill → its partitions reassigned, and kill → every one of
  them taking records again;
- etcd requests per second per broker at rest and under load (their own /metrics counters);
- placement and bulk moves: a topic of `--partitions` partitions created and served (partitions
  per broker, etcd requests at rest with them), then `--bulk-moves` moves asked for at once and
  the moves per second the cluster completes them at.

Run (with the test venv):
    FLOE_BIN=target/release/floe ~/.cache/floe/venv/bin/python bench/cluster.py [--seconds 20 --rate 2000]
"""
import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration-tests"))

from confluent_kafka import Producer  # noqa: E402

import clusterkit  # noqa: E402
from clusterkit import PARTITIONS, assignments, cli  # noqa: E402
from conftest import free_port  # noqa: E402
from table_topic_freshness import percentile  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20, help="length of each phase")
    ap.add_argument("--rate", type=int, default=2000, help="records per second produced")
    ap.add_argument("--size", type=int, default=1024, help="bytes per record")
    ap.add_argument("--partitions", type=int, default=300, help="partitions of the topic placed and moved in bulk")
    ap.add_argument("--bulk-moves", type=int, default=60, help="moves asked for at once")
    return ap.parse_args()


class Timed:
    """A paced producer recording, per acknowledged record, (partition, sent_s, acked_s)."""

    def __init__(self, bootstrap, rate, size):
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
        self.rate, self.payload = rate, b"x" * size
        self.acks, self.errors = [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        n, start = 0, time.time()
        while not self.stop.is_set():
            sent = time.time()

            def done(err, msg, sent=sent):
                if err:
                    self.errors.append(str(err))
                else:
                    self.acks.append((msg.partition(), sent, time.time()))
            self.p.produce("moves", value=self.payload, partition=n % PARTITIONS, on_delivery=done)
            n += 1
            self.p.poll(0)
            ahead = n / self.rate - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)
        self.p.flush(60)

    def latencies_ms(self, since, until):
        return sorted((a - s) * 1000 for _, s, a in self.acks if since <= s < until)


def etcd_requests(node):
    text = urllib.request.urlopen(node.admin_url + "/metrics", timeout=5).read().decode()
    m = re.search(r"^floe_cluster_etcd_requests_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def etcd_rate(nodes, seconds):
    before = [etcd_requests(n) for n in nodes]
    time.sleep(seconds)
    return [(etcd_requests(n) - b) / seconds for n, b in zip(nodes, before)]


def start_etcd(tmp):
    import subprocess
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    proc = subprocess.Popen(["etcd", "--name", "b", "--data-dir", os.path.join(tmp, "etcd"), "--listen-client-urls", url,
                             "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster", f"b=http://127.0.0.1:{peer}",
                             "--heartbeat-interval", "50", "--election-timeout", "500", "--max-txn-ops", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return proc, url
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def bulk(nodes, etcd, partitions, moves):
    """(seconds to place and serve the topic, partitions per broker, etcd rate with them, moves,
    seconds for them all)."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in nodes)})
    started = time.time()
    admin.create_topics([NewTopic("wide", partitions, 1)])["wide"].result(120)

    def served():
        parts = admin.list_topics("wide", timeout=10).topics["wide"].partitions
        return len(parts) == partitions and all(p.leader >= 0 and p.error is None for p in parts.values())
    clusterkit.wait_for(served, timeout=180, step=0.1)
    placed_s = time.time() - started
    placed = assignments(etcd, "wide")
    per_broker = Counter(a["owner"] for a in placed.values())
    at_rest = etcd_rate(nodes, 5)
    moves = min(moves, partitions)
    asked = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: cli(etcd, "partition", "move", f"wide:{i}", "--to", str(placed[("wide", i)]["owner"] % 3 + 1)), range(moves)))

    def done():
        now = assignments(etcd, "wide")
        return all(now[("wide", i)]["owner"] != placed[("wide", i)]["owner"] and now[("wide", i)]["target"] is None for i in range(moves))
    clusterkit.wait_for(done, timeout=300, step=0.05)
    return placed_s, dict(sorted(per_broker.items())), at_rest, moves, time.time() - asked


def main():
    args = parse_args()
    from pathlib import Path
    tmp = tempfile.mkdtemp(prefix="floe-cluster-bench-")
    etcd_proc, etcd = start_etcd(tmp)
    env = {"FLOE_STORAGE__WAL": "object", "FLOE_STORAGE__WAL_BATCH_INTERVAL_MS": "5"}
    nodes = clusterkit.start_cluster(Path(tmp), etcd, (1, 2, 3), **env)
    try:
        rest = etcd_rate(nodes, 5)
        placed_s, per_broker, wide_rest, bulk_moves, bulk_s = bulk(nodes, etcd, args.partitions, args.bulk_moves)
        load = Timed(",".join(n.bootstrap for n in nodes), args.rate, args.size)
        load.thread.start()
        time.sleep(2)
        t0 = time.time()
        busy = etcd_rate(nodes, args.seconds)
        t1 = time.time()
        moves, served = [], []
        k = 0
        while time.time() < t1 + args.seconds:
            part = k % PARTITIONS
            to = assignments(etcd)[("moves", part)]["owner"] % 3 + 1
            asked = time.time()
            out = cli(etcd, "partition", "move", f"moves:{part}", "--to", str(to), "--wait")
            moves.append(int(out.split(" in ")[1].split()[0]))
            moved = time.time()
            deadline = time.time() + 30
            while time.time() < deadline:
                first = [a for p, s, a in list(load.acks) if p == part and s >= moved]
                if first:
                    served.append((min(first) - asked) * 1000)
                    break
                time.sleep(0.005)
            k += 1
            time.sleep(0.3)
        t2 = time.time()
        # Failover: SIGKILL broker 2 under load.
        lost = sorted(key[1] for key, a in assignments(etcd).items() if a["owner"] == 2)
        killed = time.time()
        nodes[1].stop(signal.SIGKILL)
        reassigned = clusterkit.wait_for(lambda: not any(a["owner"] == 2 for a in assignments(etcd).values()), timeout=60, step=0.02)
        reassigned_s = time.time() - killed
        clusterkit.wait_for(lambda: {p for p, s, a in list(load.acks) if a > killed and p in lost} == set(lost), timeout=60, step=0.02)
        served_s = time.time() - killed
        load.stop.set()
        load.thread.join(120)
        base, moving = load.latencies_ms(t0, t1), load.latencies_ms(t1, t2)
        print(f"three brokers, object WAL, {args.rate} records/s of {args.size} B, idempotent acks=all (librdkafka)")
        print(f"produce latency without moves: p50 {percentile(base, 50):.1f} ms, p99 {percentile(base, 99):.1f} ms ({len(base)} records)")
        print(f"produce latency during moves:  p50 {percentile(moving, 50):.1f} ms, p99 {percentile(moving, 99):.1f} ms ({len(moving)} records)")
        moves.sort()
        served.sort()
        print(f"{len(moves)} planned moves: ask → new owner in etcd p50 {statistics.median(moves):.0f} ms, p99 {percentile(moves, 99):.0f} ms; "
              f"ask → the first record sent after it acknowledged by the new owner p50 {percentile(served, 50):.0f} ms, p99 {percentile(served, 99):.0f} ms")
        print(f"SIGKILL of a broker: {len(lost)} partitions reassigned after {reassigned_s:.2f} s ({'ok' if reassigned else 'NOT reassigned'}), "
              f"all taking records again after {served_s:.2f} s (session timeout 2 s)")
        print(f"etcd requests per second per broker: at rest {', '.join(f'{r:.1f}' for r in rest)}; under load {', '.join(f'{r:.1f}' for r in busy)}")
        print(f"producer errors: {len(load.errors)}")
        print(f"{args.partitions} partitions placed and served in {placed_s:.1f} s; per broker {per_broker}; "
              f"etcd requests per second per broker with them at rest: {', '.join(f'{r:.1f}' for r in wide_rest)}")
        print(f"{bulk_moves} moves asked for at once, all done in {bulk_s:.2f} s: {bulk_moves / bulk_s:.1f} moves/s "
              f"(moves asked for are not capped; the balancer keeps to cluster_concurrent_moves_max)")
    finally:
        for n in nodes:
            n.stop()
        etcd_proc.kill()


if __name__ == "__main__":
    main()
