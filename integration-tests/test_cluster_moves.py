"""Cluster mode: brokers sharing one bucket and one etcd serve a topic's partitions between them
and move them back and forth while idempotent `acks=all` producers (librdkafka and kafka-python)
run: every acknowledged record is read exactly once, in order, from whichever broker leads the
partition; no error reaches the producing application. Metadata lists every broker and each
partition's leader at its leader epoch. `FLOE_CLUSTER_MOVES` sets the number of moves (20 here;
the soak in docs/cluster.md runs more)."""

import json
import os
import statistics
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from conftest import Floe, floe_binary

PARTITIONS = 6


def broker(tmp_path, etcd, node_id):
    env = {"FLOE_ETCD_ENDPOINTS": etcd, "FLOE_CLUSTER_NAME": "moves", "FLOE_NODE_ID": str(node_id),
           "FLOE_OBJECT_STORE": f"file://{tmp_path / 'bucket'}"}
    return Floe(floe_binary(), tmp_path / f"node{node_id}", env=env)


def cli(etcd, *args):
    out = subprocess.run([floe_binary(), *args, "--etcd-endpoints", etcd, "--cluster-name", "moves"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def assignments(etcd):
    return {(r["topic"], r["partition"]): r for r in json.loads(cli(etcd, "partition", "list", "--json"))}


class Load:
    """Producers that run until stopped, remembering what was acknowledged and any error."""

    def __init__(self, bootstrap):
        self.stop = threading.Event()
        self.acked = []  # (partition, offset, value)
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.librdkafka, args=(bootstrap,)),
                        threading.Thread(target=self.kafka_python, args=(bootstrap,))]

    def ack(self, partition, offset, value):
        with self.lock:
            self.acked.append((partition, offset, value))

    def librdkafka(self, bootstrap):
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                      "message.timeout.ms": 60000})

        def done(err, msg):
            if err:
                self.errors.append(str(err))
            else:
                self.ack(msg.partition(), msg.offset(), msg.value().decode())
        n = 0
        while not self.stop.is_set():
            p.produce("moves", value=f"r-{n % PARTITIONS}-{n // PARTITIONS}".encode(), partition=n % PARTITIONS, on_delivery=done)
            n += 1
            p.poll(0)
            if n % 50 == 0:
                time.sleep(0.01)
        if p.flush(60) != 0:
            self.errors.append("librdkafka: records left unflushed")

    def kafka_python(self, bootstrap):
        p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, retries=1000,
                          request_timeout_ms=10000, linger_ms=5)
        n, futures = 0, []
        while not self.stop.is_set():
            part = n % PARTITIONS
            value = f"k-{part}-{n // PARTITIONS}"
            futures.append((value, p.send("moves", value=value.encode(), partition=part)))
            n += 1
            if n % 50 == 0:
                time.sleep(0.01)
        p.flush(60)
        for value, f in futures:
            try:
                md = f.get(timeout=60)
                self.ack(md.partition, md.offset, value)
            except Exception as e:  # noqa: BLE001 - any failure is what the test reports
                self.errors.append(f"kafka-python: {e!r}")
        p.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(120)


def read_all(bootstrap, expected):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("moves", i, 0) for i in range(PARTITIONS)])
    got, deadline = [], time.time() + 60
    while len(got) < expected and time.time() < deadline:
        for m in c.consume(500, 0.5):
            if not m.error():
                got.append((m.partition(), m.offset(), m.value().decode()))
    # Anything beyond what was acknowledged would show up here too.
    for m in c.consume(500, 1.0):
        if not m.error():
            got.append((m.partition(), m.offset(), m.value().decode()))
    c.close()
    return got


def test_partitions_move_back_and_forth_under_load_losing_and_duplicating_nothing(tmp_path, etcd):
    nodes = [broker(tmp_path, etcd, i).start() for i in (1, 2, 3)]
    try:
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        deadline = time.time() + 10
        while len(admin.list_topics(timeout=10).brokers) < 3 and time.time() < deadline:
            time.sleep(0.05)  # node 1 learns of the others at its next look at etcd
        admin.create_topics([NewTopic("moves", PARTITIONS, 1)])["moves"].result(30)
        placed = assignments(etcd)
        assert sorted({a["owner"] for a in placed.values()}) == [1, 2, 3], "a new topic's partitions are spread over every broker"
        deadline = time.time() + 10
        while True:
            md = AdminClient({"bootstrap.servers": nodes[2].bootstrap}).list_topics(timeout=10)
            leaders = {p.id: p.leader for p in md.topics["moves"].partitions.values()} if "moves" in md.topics else {}
            if leaders == {k[1]: a["owner"] for k, a in placed.items()} or time.time() > deadline:
                break
            time.sleep(0.1)
        assert sorted(md.brokers) == [1, 2, 3], "Metadata lists every live broker"
        assert leaders == {k[1]: a["owner"] for k, a in placed.items()}, "each partition's leader is its owner"

        moves = int(os.environ.get("FLOE_CLUSTER_MOVES", "20"))
        took_ms = []
        with Load(",".join(n.bootstrap for n in nodes)) as load:
            time.sleep(1)
            for k in range(moves):
                part = k % PARTITIONS
                owner = assignments(etcd)[("moves", part)]["owner"]
                to = owner % 3 + 1
                out = cli(etcd, "partition", "move", f"moves:{part}", "--to", str(to), "--wait")
                took_ms.append(int(out.split(" in ")[1].split()[0]))
                time.sleep(0.2)
            time.sleep(1)
        assert load.errors == [], load.errors[:5]
        final = assignments(etcd)
        epochs = sorted(a["leader_epoch"] for a in final.values())
        assert sum(epochs) == moves, f"every move bumps its partition's leader epoch once: {epochs}"

        acked = load.acked
        assert len(acked) > 1000, "the load ran"
        got = read_all(nodes[2].bootstrap, len(acked))
        assert len(got) == len(set((p, o) for p, o, _ in got)), "no offset read twice"
        assert sorted(got) == sorted(acked), "exactly the acknowledged records, at their acknowledged offsets"
        for producer in ("r", "k"):
            for part in range(PARTITIONS):
                seqs = [int(v.split("-")[2]) for p, _, v in sorted(got) if p == part and v.startswith(producer + "-")]
                assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), f"{producer} on partition {part}: in order, once each"
        took_ms.sort()
        print(f"{moves} moves under load: p50 {statistics.median(took_ms):.0f} ms, max {took_ms[-1]} ms "
              f"(ask → new owner in etcd); {len(acked)} records acknowledged and read back exactly once")
    finally:
        for n in nodes:
            n.stop()
