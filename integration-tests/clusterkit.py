"""Helpers for the cluster tests: brokers sharing one bucket and one etcd, the partition CLI,
idempotent producers that remember what was acknowledged, and a reader of every partition."""

import json
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer

from conftest import Floe, floe_binary

PARTITIONS = 6


def broker(tmp_path, etcd, node_id, **env):
    """Broker `node_id` of cluster "moves" on the bucket under `tmp_path`; `env`: more settings."""
    env = {"FLOE_ETCD_ENDPOINTS": etcd, "FLOE_CLUSTER_NAME": "moves", "FLOE_NODE_ID": str(node_id),
           "FLOE_OBJECT_STORE": f"file://{tmp_path / 'bucket'}",
           # Fewer transaction coordinator partitions than the 50 by default: quicker to place.
           "FLOE_TRANSACTION_STATE_PARTITIONS": "4", **env}
    return Floe(floe_binary(), tmp_path / f"node{node_id}", env=env)


def cli(etcd, *args, check=True):
    out = subprocess.run([floe_binary(), *args, "--etcd-endpoints", etcd, "--cluster-name", "moves"],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out.stdout if check else out


def assignments(etcd, topic="moves"):
    """(topic, partition) → assignment, of `topic` (every topic with None)."""
    rows = json.loads(cli(etcd, "partition", "list", "--json"))
    return {(r["topic"], r["partition"]): r for r in rows if topic is None or r["topic"] == topic}


class Load:
    """Producers to `topic` (`partitions` of it) that run until stopped, remembering what was
    acknowledged and any error:
    librdkafka, kafka-python unless told not to, and the Java client (3.9.1) when `java_dir`
    (where to compile it) is given and a JDK and its jars are here (`self.java` says whether)."""

    def __init__(self, bootstrap, kafka_python=True, java_dir=None, topic="moves", partitions=PARTITIONS):
        self.topic, self.partitions = topic, partitions
        self.stop = threading.Event()
        self.acked = []  # (partition, offset, value)
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.librdkafka, args=(bootstrap,))]
        if kafka_python:
            self.threads.append(threading.Thread(target=self.kafka_python, args=(bootstrap,)))
        self.java = java_dir is not None and self.java_classpath(java_dir) is not None
        if self.java:
            self.threads.append(threading.Thread(target=self.java_producer, args=(bootstrap, java_dir)))

    @staticmethod
    def java_classpath(java_dir):
        import os
        import shutil
        from test_java import HERE, client_jars
        jars = client_jars()
        if shutil.which("javac") is None or not any(j.endswith("kafka-clients.jar") for j in jars):
            return None
        cp = os.pathsep.join(jars)
        subprocess.run(["javac", "-d", str(java_dir), "-cp", cp, os.path.join(HERE, "java", "FloeMoveProducer.java")], check=True, timeout=120)
        return os.pathsep.join([str(java_dir), cp])

    def java_producer(self, bootstrap, java_dir):
        proc = subprocess.Popen(["java", "-cp", self.java_classpath(java_dir), "FloeMoveProducer", bootstrap, self.topic, str(self.partitions)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        closer = threading.Thread(target=lambda: (self.stop.wait(), proc.stdin.close()))
        closer.start()
        done = False
        for line in proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            if kind == "ACK":
                part, offset, value = rest.split(" ", 2)
                self.ack(int(part), int(offset), value)
            elif kind == "ERR":
                self.errors.append(f"java: {rest}")
            elif kind == "DONE":
                done = True
        proc.wait(120)
        closer.join()
        if not done:
            self.errors.append(f"java: exited {proc.returncode} before flushing")

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
            part = n % self.partitions
            p.produce(self.topic, value=f"r-{part}-{n // self.partitions}".encode(), partition=part, on_delivery=done)
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
            part = n % self.partitions
            value = f"k-{part}-{n // self.partitions}"
            futures.append((value, p.send(self.topic, value=value.encode(), partition=part)))
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




def start_cluster(tmp_path, etcd, ids, **env):
    """Brokers `ids`, once the first one knows all of them, and topic "moves"."""
    from confluent_kafka.admin import AdminClient, NewTopic
    nodes = [broker(tmp_path, etcd, i, **env).start() for i in ids]
    admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
    deadline = time.time() + 10
    while len(admin.list_topics(timeout=10).brokers) < len(ids) and time.time() < deadline:
        time.sleep(0.05)  # node 1 learns of the others at its next look at etcd
    admin.create_topics([NewTopic("moves", PARTITIONS, 1)])["moves"].result(30)
    return nodes


def wait_for(what, timeout=30, step=0.05):
    deadline = time.time() + timeout
    while True:
        got = what()
        if got or time.time() > deadline:
            return got
        time.sleep(step)


def check_read_back(bootstrap, acked):
    got = read_all(bootstrap, len(acked))
    assert len(got) == len({(p, o) for p, o, _ in got}), "no offset read twice"
    assert set(acked) <= set(got), f"{len(set(acked) - set(got))} acknowledged records missing"
    values = [v for _, _, v in got]
    assert len(values) == len(set(values)), "no record written twice (the idempotent producer's retries were recognised)"
    return got
