"""Produce at the disk's speed: one Floe node (file WAL, local object store) against librdkafka's
native `rdkafka_performance` (Debian's librdkafka 2.0.2 source, built once by
scripts/librdkafka-source.sh), with the disk's own fdatasync'd write rate measured in the same run
at the WAL's group size.

Prints: produce MB/s at full speed (idempotent, acks=all, 1 KiB records) against the disk's rate,
the broker's CPU seconds per GB produced, the WAL's mean group size, and produce latency p50/p99
at half the full-speed rate (per message, as the client saw it, with `--half-linger-ms`, 0 by
default; and the broker's own `floe_request_seconds{api="Produce"}` histogram). `--object-store`
puts the node's objects elsewhere than on the WAL's disk (e.g. file:///dev/shm/floe-objects);
`--pin` keeps the broker and the client each on a core of its own, as on two hosts.

Run (see bench/README.md):
  FLOE_BIN=$CARGO_TARGET_DIR/release/floe ~/.cache/floe/venv/bin/python bench/produce.py [--seconds 15]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration-tests"))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from conftest import Floe  # noqa: E402
from table_topic_freshness import percentile  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rdkafka_performance():
    src = subprocess.run([os.path.join(HERE, "..", "scripts", "librdkafka-source.sh"), "examples"], check=True, capture_output=True, text=True)
    return os.path.join(src.stdout.strip().splitlines()[-1], "examples", "rdkafka_performance")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def metrics(floe):
    with urllib.request.urlopen(floe.admin_url + "/metrics", timeout=10) as r:
        return r.read().decode()


def sample(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def histogram(text, name, labels=""):
    """Cumulative counts by bound of one histogram series; `labels` as they follow `le`
    (`,api="Produce"`), or a pattern for them."""
    return {float(le): float(v) for le, v in re.findall(rf'^{re.escape(name)}_bucket\{{le="([^"]+)"{labels}\}} (\S+)$', text, re.M)}


def bucket_percentile(before, after, q):
    """The bucket bound under which q% of the requests between two scrapes fell."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    for b, c in zip(bounds, counts):
        if total and c >= q / 100 * total:
            return b
    return float("nan")


def pin(pid, cpus):
    """Every thread of process `pid` onto `cpus` (threads it starts later inherit the mask)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            pass  # a thread that ended meanwhile


def run_perf(binary, bootstrap, topic, count, size, rate=None, latency_file=None, linger_ms=5, cpus=None):
    args = [binary, "-P", "-t", topic, "-b", bootstrap, "-s", str(size), "-a", "-1", "-c", str(count), "-u", "-q",
            "-X", "enable.idempotence=true", "-X", f"linger.ms={linger_ms}", "-X", "batch.size=1048576"]
    if rate:
        args += ["-r", str(int(rate))]
    if latency_file:
        args += ["-l", "-A", latency_file]
    started = time.time()
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    took = time.time() - started
    if out.returncode != 0:
        raise RuntimeError(f"rdkafka_performance failed:\n{out.stderr[-2000:]}")
    rows = [ln.split("|") for ln in out.stdout.splitlines() if ln.startswith("|") and "elapsed" not in ln]
    if not rows:
        raise RuntimeError(f"no figures from rdkafka_performance:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    last = [c.strip() for c in rows[-1]]
    # | elapsed | msgs | bytes | rtt | dr | dr_m/s | dr_MB/s | dr_err | tx_err | ...
    # dr_err: delivery failures; tx_err: produce calls refused by a full local queue and retried.
    elapsed_ms, delivered, errors, backpressure = float(last[1]), int(last[5]), int(last[8]), int(last[9])
    return {"seconds": elapsed_ms / 1000, "wall_seconds": took, "delivered": delivered, "errors": errors, "backpressure": backpressure,
            "msgs_per_s": delivered / (elapsed_ms / 1000), "mb_per_s": delivered * size / (elapsed_ms / 1000) / 1e6}


def disk_rate(directory, write_bytes, seconds, ring=2 << 30):
    """MB/s of `write_bytes` writes, each followed by fdatasync, going round a sparse file of the
    WAL's default capacity as the file WAL does: (first lap, where each write allocates; later
    laps, overwriting; None when the first lap did not end in `seconds`)."""
    path = os.path.join(directory, "disk-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, ring)
        buf = os.urandom(write_bytes)
        written, pos, started, lap = 0, 0, time.time(), None
        while time.time() - started < seconds:
            if pos + write_bytes > ring:
                pos = 0
                lap = lap or (time.time() - started, written)
            os.pwrite(fd, buf, pos)
            os.fdatasync(fd)
            pos += write_bytes
            written += write_bytes
        took = time.time() - started
        if lap is None:
            return written / took / 1e6, None
        return lap[1] / lap[0] / 1e6, (written - lap[1]) / (took - lap[0]) / 1e6
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15, help="length of each phase")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024, help="record bytes")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--object-store", help="the node's --object-store (default: <data dir>/objects, on the WAL's disk); "
                    "e.g. file:///dev/shm/floe-objects to keep object writes off the WAL's disk, as S3 would")
    ap.add_argument("--half-linger-ms", type=int, default=0,
                    help="the client's linger.ms at half speed (0: its latency is queueing and the round trip, no deliberate wait)")
    ap.add_argument("--pin", action="store_true",
                    help="the broker on CPU 1 and the client on CPU 0, as if on two hosts: neither takes the other's core")
    args = ap.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        sys.exit("--pin needs two CPUs")
    binary = os.environ.get("FLOE_BIN") or sys.exit("set FLOE_BIN to the floe binary")
    perf = rdkafka_performance()
    with tempfile.TemporaryDirectory(dir=os.environ.get("FLOE_BENCH_DIR")) as d:
        extra = ["--object-store", args.object_store] if args.object_store else []
        floe = Floe(binary, os.path.join(d, "floe"), extra=extra).start()
        if args.pin:
            pin(floe.proc.pid, {1})
        try:
            figures = run(floe, perf, d, args)
        finally:
            floe.stop()
    report(figures, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


def run(floe, perf, workdir, args):
    topic = "produce-bench"
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(15)
    # Warm up, and size the full-speed phase to about --seconds.
    cpus = {0} if args.pin else None
    warm = run_perf(perf, floe.bootstrap, topic, 50_000, args.size, cpus=cpus)
    before, cpu0 = metrics(floe), cpu_seconds(floe.proc.pid)
    full = run_perf(perf, floe.bootstrap, topic, int(warm["msgs_per_s"] * args.seconds), args.size, cpus=cpus)
    after, cpu1 = metrics(floe), cpu_seconds(floe.proc.pid)
    appended = sample(after, "floe_append_bytes_total") - sample(before, "floe_append_bytes_total")
    groups = sample(after, "floe_wal_writes_total") - sample(before, "floe_wal_writes_total")
    group_bytes = int(appended / groups) if groups else 256 << 10
    gb = full["delivered"] * args.size / 1e9
    disk, disk_overwrite = disk_rate(os.path.join(workdir, "floe"), max(group_bytes, 4096), max(args.seconds, 10))
    # Half the full-speed rate, each message's latency recorded by the client.
    rate = full["msgs_per_s"] / 2
    lat_file = os.path.join(workdir, "latency.txt")
    before = metrics(floe)
    half = run_perf(perf, floe.bootstrap, topic, int(rate * args.seconds), args.size, rate=rate, latency_file=lat_file, linger_ms=args.half_linger_ms, cpus=cpus)
    after = metrics(floe)
    with open(lat_file) as f:
        lat_ms = [int(x) / 1000 for x in f.read().split()]
    produce = re.escape(',api="Produce"')
    b0, b1 = histogram(before, "floe_request_seconds", produce), histogram(after, "floe_request_seconds", produce)
    wal = {name: bucket_percentile(histogram(before, name), histogram(after, name), 99) for name in ("floe_wal_fsync_seconds", "floe_upload_seconds")}
    return {
        "half_p99_seconds_le": wal,
        "disk_mb_per_s": disk, "disk_overwrite_mb_per_s": disk_overwrite, "wal_group_bytes": group_bytes, "full": full, "cpu_seconds_per_gb": (cpu1 - cpu0) / gb if gb else float("nan"),
        "half": half, "half_rate_msgs_per_s": rate,
        "client_latency_ms": {"p50": percentile(lat_ms, 50), "p99": percentile(lat_ms, 99), "p999": percentile(lat_ms, 99.9)},
        "broker_produce_seconds_le": {"p50": bucket_percentile(b0, b1, 50), "p99": bucket_percentile(b0, b1, 99)},
    }


def report(f, args):
    full, lat, srv = f["full"], f["client_latency_ms"], f["broker_produce_seconds_le"]
    print(f"\nproduce, {args.size}-byte records, idempotent acks=all, {args.partitions} partitions, rdkafka_performance (librdkafka 2.0.2); "
          f"objects: {args.object_store or 'the local store, on the WAL disk'}" + ("; broker pinned to CPU 1, client to CPU 0" if args.pin else ""))
    over = f["disk_overwrite_mb_per_s"]
    print(f"  disk, fdatasync'd {f['wal_group_bytes'] / 1024:.0f} KiB writes (the WAL's mean group) round a 2 GiB ring: first lap {f['disk_mb_per_s']:.1f} MB/s (baseline)"
          + (f", later laps (overwriting) {over:.1f} MB/s" if over else ""))
    print(f"  Floe, full speed: {full['mb_per_s']:.1f} MB/s = {full['mb_per_s'] / f['disk_mb_per_s']:.0%} of the disk; "
          f"{full['msgs_per_s']:.0f} msgs/s; {full['delivered']} delivered, {full['errors']} delivery errors "
          f"({full['backpressure']} produce calls met a full client queue and were retried)")
    print(f"  broker CPU: {f['cpu_seconds_per_gb']:.2f} s per GB produced")
    print(f"  at half speed ({f['half_rate_msgs_per_s']:.0f} msgs/s, {f['half']['mb_per_s']:.1f} MB/s, linger.ms={args.half_linger_ms}): client p50 {lat['p50']:.2f} ms, "
          f"p99 {lat['p99']:.2f} ms, p99.9 {lat['p999']:.2f} ms; broker Produce request p50 <= {srv['p50'] * 1000:g} ms, p99 <= {srv['p99'] * 1000:g} ms")
    w = f["half_p99_seconds_le"]
    print(f"  meanwhile: WAL fsync p99 <= {w['floe_wal_fsync_seconds'] * 1000:g} ms, upload p99 <= {w['floe_upload_seconds'] * 1000:g} ms")


if __name__ == "__main__":
    main()
