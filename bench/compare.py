"""Floe against Tansu 0.6.0, side by side on this machine, in one run: produce throughput and latency
at fixed rates and the most each takes (1 KiB records, acks=all, librdkafka through
confluent-kafka) with the broker's CPU seconds per GB, end-to-end latency, catch-up read
throughput, and Table Topic translation and freshness. (Not the native `rdkafka_performance` that
produce.py uses: its librdkafka 2.0.2 cannot read Tansu 0.6.0's ApiVersions v3 response, "Protocol
read buffer underflow", and never produces; confluent-kafka's newer librdkafka can.) Prints each
figure for every broker with its ratio to the first Tansu one, writes JSON and CSV, and plots
latency against throughput (PNG) with each broker's unthrottled maximum and the disk's own
fdatasync'd write rate, measured in the same run, as lines.

Run (see bench/README.md):
  FLOE_BIN=target/release/floe TANSU_BIN=~/.cache/floe/tansu/bin/tansu \\
    ~/.cache/floe/venv/bin/python bench/compare.py [--seconds 5] [--rates 1000,5000,20000]

Brokers: Floe with the file WAL and with the object WAL, both on a loopback S3 (moto_server), and
Tansu with its S3 engine on the same server and with its memory engine (which keeps nothing).
"""
import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration-tests"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic  # noqa: E402

from conftest import Floe, free_port  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from produce import cpu_seconds, disk_rate  # noqa: E402
from table_topic_freshness import percentile  # noqa: E402

RECORD_BYTES = 1024
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def wait_port(port, timeout=30, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Moto:
    """A loopback S3 API (moto_server) with one bucket per broker."""

    def __init__(self):
        self.port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def bucket(self, name):
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{name}", method="PUT"), timeout=10).read()
        return name

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class FloeBroker:
    def __init__(self, binary, wal, moto, workdir):
        self.name = f"floe-{wal}-wal"
        bucket = moto.bucket(f"floe-{wal}-{uuid.uuid4().hex[:6]}")
        store = f"s3://{bucket}?endpoint={moto.endpoint}&region=us-east-1"
        self.node = Floe(binary, os.path.join(workdir, self.name), extra=["--wal", wal, "--object-store", store], env=dict(CREDS))
        self.table_topics = True

    def pid(self):
        return self.node.proc.pid

    def start(self):
        self.node.start(timeout=60)
        self.bootstrap = self.node.bootstrap
        return self

    def stop(self):
        self.node.stop()


class TansuBroker:
    def __init__(self, binary, engine, moto, workdir):
        self.name = f"tansu-{engine}"
        self.port = free_port()
        if engine == "s3":
            url = f"s3://{moto.bucket('tansu-' + uuid.uuid4().hex[:6])}/"
            env = dict(CREDS, AWS_ENDPOINT=moto.endpoint, AWS_ALLOW_HTTP="true")
        else:
            url, env = "memory://tansu/", {}
        self.args = [binary, "broker", "--storage-engine", url, "--listener-url", f"tcp://127.0.0.1:{self.port}",
                     "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}"]
        self.env = dict(os.environ, **env)
        self.log = open(os.path.join(workdir, self.name + ".log"), "w")
        self.table_topics = False

    def pid(self):
        return self.proc.pid

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=self.env)
        wait_port(self.port, proc=self.proc)
        self.bootstrap = f"127.0.0.1:{self.port}"
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def create_topic(bootstrap, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(30)
    return admin


def produce_at(bootstrap, topic, rate, seconds, payload):
    """Produces at `rate` records/s (0: as fast as possible) for `seconds`; delivery latencies (s) and throughput."""
    lat, errors = [], []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1, "enable.idempotence": False,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})

    def cb(err, msg, sent):
        if err is not None:
            errors.append(err)
        else:
            lat.append(time.perf_counter() - sent)

    start = time.perf_counter()
    i = 0
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if rate and i >= rate * (now - start):
            p.poll(0)
            time.sleep(0.0002)
            continue
        sent = time.perf_counter()
        try:
            p.produce(topic, value=payload, on_delivery=lambda e, m, s=sent: cb(e, m, s))
            i += 1
        except BufferError:
            p.poll(0.01)
        if i % 64 == 0:
            p.poll(0)
    p.flush(120)
    # At a fixed rate the window is the run; unthrottled, it lasts until the last acknowledgement.
    elapsed = seconds if rate else time.perf_counter() - start
    return {"records": len(lat), "errors": len(errors), "seconds": elapsed, "records_per_s": len(lat) / elapsed,
            "mb_per_s": len(lat) * len(payload) / elapsed / 1e6,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3, "p999_ms": percentile(lat, 99.9) * 1e3}


def end_to_end(bootstrap, topic, rate, seconds):
    """Produce → consumer latency at `rate` records/s, from a timestamp in each record."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-" + uuid.uuid4().hex, "fetch.wait.max.ms": 100, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, -1)])
    lat = []
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            m = c.poll(0.1)
            if m is not None and not m.error():
                lat.append(time.time() - float(m.value()[:20].decode()))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(1.0)  # the consumer is positioned at the end before anything is sent
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    start = time.time()
    for i in range(int(rate * seconds)):
        while time.time() < start + i / rate:
            time.sleep(0.0005)
        p.produce(topic, value=f"{time.time():20.6f}".encode() + b"x" * (RECORD_BYTES - 20))
        p.poll(0)
    p.flush(60)
    deadline = time.time() + 10
    while len(lat) < int(rate * seconds) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join()
    c.close()
    return {"records": len(lat), "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3, "p999_ms": percentile(lat, 99.9) * 1e3}


def catch_up(bootstrap, topic, expected):
    """A new consumer reads `expected` records from the earliest offset: MB/s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "catchup-" + uuid.uuid4().hex, "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    c.assign([TopicPartition(topic, 0, -2)])
    n, size = 0, 0
    start = time.perf_counter()
    deadline = time.time() + 120
    while n < expected and time.time() < deadline:
        for m in c.consume(10000, 1.0):
            if not m.error():
                n += 1
                size += len(m.value())
    elapsed = time.perf_counter() - start
    c.close()
    return {"records": n, "seconds": elapsed, "mb_per_s": size / elapsed / 1e6, "records_per_s": n / elapsed}


def table_topic(broker, records, interval_ms=1000):
    """Records produced first, then the topic made a Table Topic: rows/s until all are committed,
    and freshness (produce ack → visible in a snapshot) p50/p99 at 50 records/s."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import NoSuchTableError
    topic = "tt" + uuid.uuid4().hex[:6]
    admin = create_topic(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(records):
        body = json.dumps({"id": i, "name": f"n{i}", "amount": i * 1.5, "tags": ["a", "b"], "pad": "x" * 900})
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=body.encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    catalog = RestCatalog("floe", uri=broker.node.catalog_url)
    cfg = {"automq.table.topic.enable": "true", "automq.table.topic.commit.interval.ms": str(interval_ms),
           "automq.table.topic.convert.value.type": "json", "automq.table.topic.transform.value.type": "flatten"}
    start = time.perf_counter()
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in cfg.items()])
    list(admin.incremental_alter_configs([res]).values())[0].result(30)
    rows = 0
    while rows < records and time.perf_counter() - start < 300:
        try:
            snap = catalog.load_table(("default", topic)).current_snapshot()
            rows = int(snap.summary.additional_properties.get("total-records", 0)) if snap else 0
        except NoSuchTableError:
            pass
        time.sleep(0.2)
    translate_s = time.perf_counter() - start

    # Freshness: each acked record's wait until a snapshot holds it, watched while producing
    # (watching only after the last send would count the send time as staleness).
    acked, seen = {}, {}
    lock = threading.Lock()

    def on_ack(e, m):
        if e is None:
            with lock:
                acked[m.offset()] = time.time()

    def produce():
        fp = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
        t0 = time.time()
        for i in range(200):
            while time.time() < t0 + i / 50:
                fp.poll(0.002)
            fp.produce(topic, value=json.dumps({"id": records + i, "name": "f", "amount": 0.0, "tags": [], "pad": ""}).encode(), on_delivery=on_ack)
            fp.poll(0)
        fp.flush(30)

    sender = threading.Thread(target=produce)
    sender.start()
    deadline = time.time() + 40
    while (sender.is_alive() or len(seen) < len(acked)) and time.time() < deadline:
        snap = catalog.load_table(("default", topic)).current_snapshot()
        total = int(snap.summary.additional_properties.get("total-records", 0))
        now = time.time()
        with lock:
            pending = [(off, at) for off, at in acked.items() if off not in seen]
        for off, at in pending:
            if off < total:
                seen[off] = now - at
        time.sleep(0.05)
    sender.join()
    fresh = list(seen.values())
    return {"records": rows, "rows_per_s": rows / translate_s, "seconds": translate_s,
            "freshness_p50_ms": percentile(fresh, 50) * 1e3, "freshness_p99_ms": percentile(fresh, 99) * 1e3}


def measure(broker, args):
    out = {"broker": broker.name, "fixed_rate": []}
    payload = os.urandom(RECORD_BYTES)
    for rate in args.rates:
        topic = "rate" + uuid.uuid4().hex[:6]
        create_topic(broker.bootstrap, topic)
        r = produce_at(broker.bootstrap, topic, rate, args.seconds, payload)
        r["target_rate"] = rate
        out["fixed_rate"].append(r)
        print(f"  {broker.name}: {rate} rec/s target → {r['records_per_s']:.0f} rec/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p999 {r['p999_ms']:.2f} ms", flush=True)
    topic = "max" + uuid.uuid4().hex[:6]
    create_topic(broker.bootstrap, topic)
    cpu0 = cpu_seconds(broker.pid())
    out["max_throughput"] = produce_at(broker.bootstrap, topic, 0, args.seconds, payload)
    gb = out["max_throughput"]["records"] * RECORD_BYTES / 1e9
    per_gb = (cpu_seconds(broker.pid()) - cpu0) / gb if gb else None
    out["max_throughput"]["cpu_seconds_per_gb"] = per_gb
    print(f"  {broker.name}: max {out['max_throughput']['mb_per_s']:.1f} MB/s, " + (f"{per_gb:.2f} broker CPU-s per GB" if per_gb else "nothing delivered"), flush=True)
    out["catch_up"] = catch_up(broker.bootstrap, topic, out["max_throughput"]["records"])
    print(f"  {broker.name}: catch-up read {out['catch_up']['mb_per_s']:.1f} MB/s", flush=True)
    topic = "e2e" + uuid.uuid4().hex[:6]
    create_topic(broker.bootstrap, topic)
    out["end_to_end"] = end_to_end(broker.bootstrap, topic, args.e2e_rate, args.seconds)
    print(f"  {broker.name}: end-to-end p50 {out['end_to_end']['p50_ms']:.2f} ms, p99 {out['end_to_end']['p99_ms']:.2f} ms", flush=True)
    if broker.table_topics:
        out["table_topic"] = table_topic(broker, args.table_records)
        print(f"  {broker.name}: table topic {out['table_topic']['rows_per_s']:.0f} rows/s, freshness p99 {out['table_topic']['freshness_p99_ms']:.0f} ms", flush=True)
    return out


FIGURES = [  # (name, getter, higher is better)
    ("max produce MB/s", lambda r: r["max_throughput"]["mb_per_s"], True),
    ("max produce records/s", lambda r: r["max_throughput"]["records_per_s"], True),
    ("broker CPU-s per GB at max", lambda r: r["max_throughput"]["cpu_seconds_per_gb"], False),
    ("catch-up read MB/s", lambda r: r["catch_up"]["mb_per_s"], True),
    ("end-to-end p50 ms", lambda r: r["end_to_end"]["p50_ms"], False),
    ("end-to-end p99 ms", lambda r: r["end_to_end"]["p99_ms"], False),
    ("end-to-end p999 ms", lambda r: r["end_to_end"]["p999_ms"], False),
    ("table-topic rows/s", lambda r: r.get("table_topic", {}).get("rows_per_s"), True),
    ("table-topic freshness p99 ms", lambda r: r.get("table_topic", {}).get("freshness_p99_ms"), False),
]


def fixed_rate_figures(results):
    rates = sorted({f["target_rate"] for r in results for f in r["fixed_rate"]})
    figs = []
    for rate in rates:
        for q in ("p50_ms", "p99_ms", "p999_ms"):
            figs.append((f"produce @{rate}/s {q.replace('_ms', '')} ms", lambda r, rate=rate, q=q: next((f[q] for f in r["fixed_rate"] if f["target_rate"] == rate), None), False))
    return figs


def report(results):
    """The table: every figure for every broker, and its ratio to the first Tansu broker (>1: Floe better)."""
    base = next((r for r in results if r["broker"].startswith("tansu")), None)
    rows = []
    names = [r["broker"] for r in results]
    print("\n" + f"{'figure':<32}" + "".join(f"{n:>22}" for n in names))
    for name, get, higher in FIGURES[:4] + fixed_rate_figures(results) + FIGURES[4:]:
        vals = [get(r) for r in results]
        b = get(base) if base else None
        cells = []
        for r, v in zip(results, vals):
            ratio = None
            if v is not None and b not in (None, 0) and v != 0:
                ratio = (v / b) if higher else (b / v)
            rows.append({"figure": name, "broker": r["broker"], "value": v, "better_than_baseline_x": ratio, "baseline": base["broker"] if base else None})
            cells.append("n/a" if v is None else (f"{v:.2f}" + (f" ({ratio:.2f}x)" if ratio and not r["broker"].startswith("tansu") else "")))
        print(f"{name:<32}" + "".join(f"{c:>22}" for c in cells))
    print("\n(ratio: how many times better than " + (base["broker"] if base else "-") + "; table topics: Tansu 0.6.0 here is built without its Iceberg feature)")
    return rows


def plot(results, disk, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, r in enumerate(results):
        xs = [f["mb_per_s"] for f in r["fixed_rate"]]
        ax.plot(xs, [f["p99_ms"] for f in r["fixed_rate"]], marker="o", color=f"C{i}", label=f"{r['broker']} p99")
        ax.plot(xs, [f["p50_ms"] for f in r["fixed_rate"]], marker=".", linestyle="--", color=f"C{i}", label=f"{r['broker']} p50")
        ax.axvline(r["max_throughput"]["mb_per_s"], color=f"C{i}", linestyle="-.", alpha=0.6, label=f"{r['broker']} most it took, unthrottled")
    ax.axvline(disk["mb_per_s"], color="grey", linestyle=":", label=f"disk: fdatasync'd {disk['write_bytes'] >> 10} KiB writes, {disk['mb_per_s']:.0f} MB/s")
    ax.set_xlabel("produce throughput (MB/s, 1 KiB records, acks=all)")
    ax.set_ylabel("produce latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Floe vs Tansu 0.6.0: latency against throughput (one machine, loopback S3)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rates", default="1000,5000,20000", help="fixed produce rates, records/s")
    ap.add_argument("--e2e-rate", type=float, default=500)
    ap.add_argument("--table-records", type=int, default=50000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--brokers", default="floe-file,floe-object,tansu-s3,tansu-memory")
    args = ap.parse_args()
    args.rates = [int(r) for r in args.rates.split(",")]
    floe_bin = os.environ.get("FLOE_BIN") or sys.exit("set FLOE_BIN to a release floe binary")
    brokers = args.brokers.split(",")
    tansu_bin = os.environ.get("TANSU_BIN")
    if not tansu_bin and any(b.startswith("tansu-") for b in brokers):
        sys.exit("set TANSU_BIN to tansu 0.6.0 (cargo install tansu --version 0.6.0 --locked --features dynostore), or leave tansu-* out of --brokers")
    os.makedirs(args.out, exist_ok=True)
    moto = Moto()
    results = []
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("FLOE_BENCH_DIR")) as work:
            # The disk under the brokers' data directories, as the file WAL writes it: the line the plot draws.
            disk = {"write_bytes": 256 << 10, "mb_per_s": disk_rate(work, 256 << 10, 10)[0]}
            print(f"disk: fdatasync'd 256 KiB writes {disk['mb_per_s']:.1f} MB/s", flush=True)
            for which in brokers:
                kind, mode = which.split("-", 1)
                broker = FloeBroker(floe_bin, mode, moto, work) if kind == "floe" else TansuBroker(tansu_bin, mode, moto, work)
                print(f"{broker.name}:", flush=True)
                broker.start()
                try:
                    results.append(measure(broker, args))
                finally:
                    broker.stop()
    finally:
        moto.stop()
    rows = report(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.out, f"compare-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "disk": disk, "results": results}, f, indent=2)
    with open(os.path.join(args.out, f"compare-{stamp}.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["figure", "broker", "value", "better_than_baseline_x", "baseline"])
        w.writeheader()
        w.writerows(rows)
    png = os.path.join(args.out, f"compare-{stamp}.png")
    try:
        plot(results, disk, png)
    except ImportError:
        print(f"\nwrote {args.out}/compare-{stamp}.json and .csv (no plot: pip install matplotlib)")
        return
    print(f"\nwrote {args.out}/compare-{stamp}.json, .csv and .png")


if __name__ == "__main__":
    main()
