"""Small helpers shared by the client tests (confluent-kafka)."""

import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap, name, partitions=1, config=None, **conf):
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])[name]
    fut.result(timeout=30)


def send(p, topic, value, **kwargs):
    """`p.produce`, waiting (polling delivery reports) while the client's queue is full."""
    while True:
        try:
            p.produce(topic, value, **kwargs)
            return
        except BufferError:
            p.poll(0.05)


def produce(bootstrap, topic, values, partition=None, **conf):
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, **conf})
    for i, v in enumerate(values):
        kwargs = {"key": str(i).encode()}
        if partition is not None:
            kwargs["partition"] = partition
        send(p, topic, v, on_delivery=lambda err, msg: errors.append(err) if err else None, **kwargs)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} messages not delivered"
    assert not errors, errors
    return p


def consume_all(bootstrap, topic, expected, group=None, timeout=60, **conf):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or f"reader-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **conf,
    })
    c.subscribe([topic])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(m.error())
        out.append(m)
    c.close()
    return out
