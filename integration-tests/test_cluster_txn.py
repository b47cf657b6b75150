"""Cluster mode, transactions: a transactional id is coordinated by the leader of its partition of
`__transaction_state`, which moves like any partition. A librdkafka transactional producer
commits and aborts transactions spanning partitions led by three brokers (markers reach the other
brokers through WriteTxnMarkers, produce is verified with the coordinator) while its coordinator
and its partitions move; read_committed readers see each committed record once and no aborted
one. Then the coordinator's broker is killed (SIGKILL, object WAL) with a transaction open: the
broker that takes its partition over aborts it when it times out, and readers move past it.
Consume-transform-produce commits a group's offsets in the transactions while the group is
coordinated by another broker than the transaction."""

import signal
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from clusterkit import assignments, broker, cli, wait_for

TXN_PARTITIONS = 4
ENV = {"FLOE_STORAGE__WAL": "object", "FLOE_STORAGE__WAL_BATCH_INTERVAL_MS": "20",
       "FLOE_TRANSACTION_STATE_PARTITIONS": str(TXN_PARTITIONS), "FLOE_OFFSETS_TOPIC_NUM_PARTITIONS": "4",
       "FLOE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "500",
       # Only the moves made here.
       "FLOE_CLUSTER_BALANCE_INTERVAL_MS": "3600000"}


def java_hash(s):
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(txn_id):
    return (java_hash(txn_id) & 0x7FFFFFFF) % TXN_PARTITIONS


def owner(etcd, topic, partition):
    return assignments(etcd, topic)[(topic, partition)]["owner"]


def move(etcd, topic, partition, to=None, among=(1, 2, 3)):
    now = owner(etcd, topic, partition)
    to = to or next(i for i in among if i != now)
    cli(etcd, "partition", "move", f"{topic}:{partition}", "--to", str(to), "--wait")


def read_committed(bootstrap, expect, timeout=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.assign([TopicPartition("tx", p, 0) for p in range(3)])
    got, deadline = [], time.time() + timeout
    while time.time() < deadline and not expect(got):
        got.extend(m.value().decode() for m in c.consume(500, 0.3) if not m.error())
    got.extend(m.value().decode() for m in c.consume(500, 1.0) if not m.error())
    c.close()
    return got


def test_transactions_span_brokers_and_survive_their_coordinator_moving_and_dying(tmp_path, etcd):
    nodes = [broker(tmp_path, etcd, i, **ENV).start() for i in (1, 2, 3)]
    try:
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        wait_for(lambda: len(admin.list_topics(timeout=10).brokers) == 3, timeout=10)
        admin.create_topics([NewTopic("tx", 3, 1)])["tx"].result(30)
        assert len({owner(etcd, "tx", p) for p in range(3)}) == 3, "each partition on its own broker"
        txn_id = "app-cluster"
        q = coordinator_partition(txn_id)
        bootstrap = ",".join(n.bootstrap for n in nodes)
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 5000, "linger.ms": 5})
        p.init_transactions(30)
        committed, aborted = [], []
        for n in range(24):
            p.begin_transaction()
            values = [f"t{n}-p{part}" for part in range(3)]
            for part, v in enumerate(values):
                p.produce("tx", value=v.encode(), partition=part)
            p.flush(30)
            if n % 6 == 2:
                move(etcd, "__transaction_state", q)  # the coordinator, in the middle of the transaction
            if n % 6 == 4:
                move(etcd, "tx", n % 3)  # one of its partitions
            if n % 4 == 3:
                p.abort_transaction(30)
                aborted += values
            else:
                p.commit_transaction(30)
                committed += values
        got = read_committed(bootstrap, lambda got: len(got) >= len(committed))
        assert sorted(got) == sorted(committed), f"{len(set(committed) - set(got))} committed missing, {len(set(got) & set(aborted))} aborted seen"

        # Consume-transform-produce with the group's offsets in each transaction, the group
        # coordinated by another broker than the transaction: the offsets travel with it.
        group, coordinator = "ctp", owner(etcd, "__transaction_state", q)
        if owner(etcd, "__consumer_offsets", coordinator_partition(group)) == coordinator:
            move(etcd, "__consumer_offsets", coordinator_partition(group))
        assert owner(etcd, "__consumer_offsets", coordinator_partition(group)) != coordinator
        admin.create_topics([NewTopic("in", 1, 1), NewTopic("out", 1, 1)])["in"].result(30)
        feed = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        for i in range(30):
            feed.produce("in", value=f"in-{i}".encode())
        assert feed.flush(30) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "isolation.level": "read_committed"})
        c.subscribe(["in"])
        done, deadline = 0, time.time() + 60
        while done < 30 and time.time() < deadline:
            msgs = [m for m in c.consume(5, 1.0) if not m.error()]
            if not msgs:
                continue
            p.begin_transaction()
            for m in msgs:
                p.produce("out", value=m.value().decode().replace("in-", "out-").encode(), partition=0)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            p.commit_transaction(30)
            done += len(msgs)
        assert done == 30, done
        offsets = c.committed([TopicPartition("in", 0)], timeout=30)
        c.close()
        assert offsets[0].offset == 30, "the group's offsets, committed with the transactions, reached the end of its input"
        outs = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
        outs.assign([TopicPartition("out", 0, 0)])
        got_out, deadline = [], time.time() + 30
        while len(got_out) < 30 and time.time() < deadline:
            got_out.extend(m.value().decode() for m in outs.consume(100, 0.5) if not m.error())
        outs.close()
        assert sorted(got_out) == sorted(f"out-{i}" for i in range(30))

        # The coordinator dies with a transaction open: its successor aborts it on timeout.
        p.begin_transaction()
        for part in range(3):
            p.produce("tx", value=f"open-p{part}".encode(), partition=part)
        p.flush(30)
        dead = owner(etcd, "__transaction_state", q)
        killed_at = time.time()
        nodes[dead - 1].stop(signal.SIGKILL)
        assert wait_for(lambda: owner(etcd, "__transaction_state", q) != dead and all(owner(etcd, "tx", i) != dead for i in range(3)), timeout=30)
        live = ",".join(n.bootstrap for i, n in enumerate(nodes, 1) if i != dead)
        plain = Producer({"bootstrap.servers": live, "enable.idempotence": True, "acks": "all"})
        for part in range(3):
            plain.produce("tx", value=f"after-p{part}".encode(), partition=part)
        assert plain.flush(60) == 0
        after = {f"after-p{part}" for part in range(3)}
        got = read_committed(live, lambda got: after <= set(got), timeout=90)
        moved_on_s = time.time() - killed_at
        assert after <= set(got), "read_committed readers move past the dead coordinator's open transaction"
        assert not any(v.startswith("open-") for v in got), "its records were aborted"
        assert sorted(v for v in got if not v.startswith("after-")) == sorted(committed)
        print(f"transactions across 3 brokers: {len(committed)} committed and {len(aborted)} aborted records as expected through "
              f"coordinator and partition moves; coordinator SIGKILL → open transaction aborted and readers past it in {moved_on_s:.1f} s")
    finally:
        for n in nodes:
            n.stop()
