"""SIGKILL the broker at random moments during a stream of transactions, 20 times: every
transaction whose commit was acknowledged is wholly visible to read_committed consumers and to
the Table Topic, none that was aborted is, none is visible in part, and every open transaction
ends (aborted by its successor's InitProducerId or by its timeout)."""

import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from test_table_topic import create_table_topic, read_table
from test_transactions import read

TOPIC = "ledger"
PARTITIONS = 3
RECORDS_PER_TXN = 5


def test_sigkill_during_transactions_keeps_each_one_all_or_nothing(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, TOPIC, partitions=PARTITIONS, convert_value_type="json", transform_value_type="flatten")
    rng = random.Random(1616)
    committed, aborted = set(), set()
    k = 0
    for cycle in range(20):
        if cycle:
            floe.start()
        killer = threading.Timer(rng.uniform(0.3, 2.0), lambda: floe.proc.send_signal(signal.SIGKILL))
        killer.start()
        try:
            p = Producer({"bootstrap.servers": floe.bootstrap, "transactional.id": "ledger-app", "linger.ms": 2,
                          "transaction.timeout.ms": 5000, "message.timeout.ms": 4000})
            p.init_transactions(5)
            while True:
                k += 1
                p.begin_transaction()
                for j in range(RECORDS_PER_TXN):
                    p.produce(TOPIC, partition=rng.randrange(PARTITIONS), value=json.dumps({"txn": k, "j": j}).encode())
                if rng.random() < 0.25:
                    p.abort_transaction(5)
                    aborted.add(k)
                else:
                    p.commit_transaction(5)
                    committed.add(k)
        except KafkaException:
            pass  # the broker went away mid-transaction: its outcome is whatever the coordinator decided
        killer.join()
        floe.proc.wait(30)
        floe.proc = None
    floe.start()
    assert len(committed) > 20, f"only {len(committed)} transactions committed across the cycles"

    # Every transaction left open ends: the LSO reaches the high watermark on each partition.
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lso"})
    deadline = time.time() + 60
    while time.time() < deadline:
        ends = []
        for i in range(PARTITIONS):
            c2 = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
            ends.append((c2.get_watermark_offsets(TopicPartition(TOPIC, i), timeout=10, cached=False)[1],
                         c.get_watermark_offsets(TopicPartition(TOPIC, i), timeout=10, cached=False)[1]))
            c2.close()
        if all(lso == hw for lso, hw in ends):
            break
        time.sleep(0.5)
    c.close()
    assert all(lso == hw for lso, hw in ends), f"open transactions never ended: {ends}"

    seen = defaultdict(list)
    for v in read(floe, TOPIC, "read_committed", idle=3.0, timeout=60):
        r = json.loads(v)
        seen[r["txn"]].append(r["j"])
    partial = {t: js for t, js in seen.items() if sorted(js) != list(range(RECORDS_PER_TXN))}
    assert not partial, f"transactions seen in part or twice: {partial}"
    assert committed <= set(seen), f"acknowledged commits missing: {sorted(committed - set(seen))}"
    assert not (aborted & set(seen)), f"aborted transactions visible: {sorted(aborted & set(seen))}"

    # The table holds exactly what read_committed consumers see, once it stands at the LSO.
    rows = read_table(floe, TOPIC, len(seen) * RECORDS_PER_TXN, timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and len(rows) != len(seen) * RECORDS_PER_TXN:
        time.sleep(0.5)
        rows = read_table(floe, TOPIC, 0)
    in_table = defaultdict(list)
    for r in rows:
        in_table[r["txn"]].append(r["j"])
    assert {t: sorted(js) for t, js in in_table.items()} == {t: sorted(js) for t, js in seen.items()}
