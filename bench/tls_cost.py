"""The cost of TLS and SASL on produce: one node with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-256)
listeners; the same load through each; throughput at full speed and latency at a fixed rate, with
PLAINTEXT as the baseline of the same run. 1 KiB records, acks=all, librdkafka (confluent-kafka).

Run: FLOE_BIN=target/release/floe ~/.cache/floe/venv/bin/python bench/tls_cost.py [--mib 200 --rate 5000 --seconds 10]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration-tests"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from conftest import Floe  # noqa: E402
from helpers import send  # noqa: E402
from pki import Ca  # noqa: E402


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def conf(ports, ca, name):
    c = {"bootstrap.servers": f"127.0.0.1:{ports[name]}", "security.protocol": name, "acks": "all", "linger.ms": 5}
    if "SSL" in name:
        c["ssl.ca.location"] = ca.cert_file
    if "SASL" in name:
        c.update({"sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "bench", "sasl.password": "bench-pw"})
    return c


def throughput(c, topic, mib):
    p = Producer({**c, "queue.buffering.max.kbytes": 262144})
    value, n = b"x" * 1024, mib * 1024
    start = time.perf_counter()
    for _ in range(n):
        send(p, topic, value)
        p.poll(0)
    p.flush(120)
    return mib / (time.perf_counter() - start)


def latency(c, topic, rate, seconds):
    p = Producer(c)
    lat = []
    value = b"x" * 1024
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        sent = time.perf_counter()
        p.produce(topic, value, on_delivery=lambda e, m, s=sent: lat.append((time.perf_counter() - s) * 1000) if e is None else None)
        p.poll(0)
        i += 1
    p.flush(60)
    return percentile(lat, 50), percentile(lat, 99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    binary = os.environ.get("FLOE_BIN") or sys.exit("set FLOE_BIN to the floe binary")
    with tempfile.TemporaryDirectory() as d:
        ca = Ca(d, "bench")
        cert, key = ca.issue("localhost", stem="server")
        data = os.path.join(d, "floe")
        os.makedirs(data)
        subprocess.run([binary, "user", "create", "bench", "--password-stdin", "--data-dir", data], input="bench-pw\n", text=True, check=True)
        config = os.path.join(d, "floe.toml")
        with open(config, "w") as f:
            f.write('listeners = ["PLAINTEXT://127.0.0.1:0", "SSL://127.0.0.1:0", "SASL_SSL://127.0.0.1:0"]\n'
                    f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n')
        floe = Floe(binary, data, extra=["--config", config]).start()
        try:
            with open(floe.log_path) as f:
                line = [x for x in f.read().split() if x.startswith("listeners=")][-1]
            ports = {n: int(a.rsplit(":", 1)[1]) for n, a in (e.split("://") for e in line.removeprefix("listeners=").split(","))}
            print(f"| listener | MiB/s ({args.mib} MiB, 1 KiB records) | vs PLAINTEXT | p50 ms at {args.rate}/s | p99 ms |")
            print("| --- | --- | --- | --- | --- |")
            base = None
            for name in ("PLAINTEXT", "SSL", "SASL_SSL"):
                c = conf(ports, ca, name)
                topic = f"bench-{name.lower()}"
                admin = AdminClient(c)
                admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
                mibs = throughput(c, topic, args.mib)
                base = base or mibs
                p50, p99 = latency(c, topic, args.rate, args.seconds)
                print(f"| {name} | {mibs:.1f} | {mibs / base:.0%} | {p50:.2f} | {p99:.2f} |", flush=True)
        finally:
            floe.stop()


if __name__ == "__main__":
    main()
