"""Kafka transactions with confluent-kafka (librdkafka): commit and abort, read_committed consumers,
consume-transform-produce with offsets in the transaction, zombie fencing, timeouts, restarts,
and Table Topics that hold only committed records."""

import signal
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import Floe, floe_binary
from helpers import create_topic


def txn_producer(floe, txn_id, **conf):
    p = Producer({"bootstrap.servers": floe.bootstrap, "transactional.id": txn_id, "linger.ms": 5, **conf})
    p.init_transactions(30)
    return p


def open_then_plain(floe, topic, txn_id, open_value, plain_value, **conf):
    """A transaction left open with one record, then a plain record after it; the producer."""
    p = txn_producer(floe, txn_id, **conf)
    p.begin_transaction()
    p.produce(topic, value=open_value)
    p.flush(10)
    plain = Producer({"bootstrap.servers": floe.bootstrap})
    plain.produce(topic, value=plain_value)
    plain.flush(10)
    return p


def read(floe, topic, isolation, expect=None, timeout=20, idle=2.0):
    """Every value in `topic` as a consumer with `isolation` sees it: until `expect` values
    arrived, or nothing new came for `idle` seconds after the end."""
    c = Consumer({
        "bootstrap.servers": floe.bootstrap,
        "group.id": f"r-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    c.subscribe([topic])
    out = []
    deadline = time.time() + timeout
    last_new = time.time()
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if expect is None and time.time() - last_new > idle:
                break
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(m.error())
        out.append(m.value().decode())
        last_new = time.time()
        if expect is not None and len(out) >= expect:
            break
    c.close()
    return out


def test_committed_records_are_seen_once_and_aborted_ones_never(floe, topic_name):
    create_topic(floe.bootstrap, topic_name, partitions=2)
    p = txn_producer(floe, f"app-{topic_name}")
    for batch, commit in ((range(0, 10), True), (range(10, 15), False), (range(15, 18), True)):
        p.begin_transaction()
        for i in batch:
            p.produce(topic_name, key=str(i).encode(), value=f"v{i}".encode())
        p.flush(10)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    committed = sorted(read(floe, topic_name, "read_committed", expect=13), key=lambda v: int(v[1:]))
    assert committed == [f"v{i}" for i in list(range(10)) + list(range(15, 18))]
    assert len(read(floe, topic_name, "read_committed")) == 13, "nothing aborted shows up later"
    uncommitted = read(floe, topic_name, "read_uncommitted", expect=18)
    assert len(uncommitted) == 18, "read_uncommitted sees the aborted records too"


def test_an_open_transaction_holds_read_committed_consumers_back_until_it_commits(floe, topic_name):
    create_topic(floe.bootstrap, topic_name)
    # A plain record after the open transaction's: read_committed must not see it yet either.
    p = open_then_plain(floe, topic_name, f"hold-{topic_name}", b"open-1", b"plain")
    assert read(floe, topic_name, "read_committed", idle=1.5) == []
    assert sorted(read(floe, topic_name, "read_uncommitted", expect=2)) == ["open-1", "plain"]


    def latest(isolation):
        c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "wm", "isolation.level": isolation})
        offsets = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)
        c.close()
        return offsets

    assert latest("read_committed") == (0, 0), "ListOffsets latest for read_committed is the LSO"
    assert latest("read_uncommitted") == (0, 2)
    p.commit_transaction(30)
    assert read(floe, topic_name, "read_committed", expect=2) == ["open-1", "plain"]
    assert latest("read_committed") == (0, 3), "the commit marker takes an offset"


def test_consume_transform_produce_commits_offsets_with_the_output(floe, topic_name):
    src, dst, group = topic_name, topic_name + "-out", f"g-{topic_name}"
    create_topic(floe.bootstrap, src)
    create_topic(floe.bootstrap, dst)
    feed = Producer({"bootstrap.servers": floe.bootstrap})
    for i in range(20):
        feed.produce(src, value=str(i).encode())
    feed.flush(10)

    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.subscribe([src])
    p = txn_producer(floe, f"ctp-{topic_name}")
    seen = 0
    aborted_once = False
    deadline = time.time() + 40
    while seen < 20 and time.time() < deadline:
        msgs = c.consume(5, 1.0)
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, value=str(int(m.value()) * 10).encode())
        p.send_offsets_to_transaction([TopicPartition(src, 0, msgs[-1].offset() + 1)], c.consumer_group_metadata(), 30)
        if not aborted_once:
            # The first batch is aborted: its output vanishes and its offsets do not move.
            aborted_once = True
            p.abort_transaction(30)
            assert c.committed([TopicPartition(src, 0)], timeout=10)[0].offset < 0
            c.seek(TopicPartition(src, 0, msgs[0].offset()))
            continue
        p.commit_transaction(30)
        seen += len(msgs)
    assert seen == 20
    assert c.committed([TopicPartition(src, 0)], timeout=10)[0].offset == 20
    c.close()
    out = sorted(int(v) for v in read(floe, dst, "read_committed", expect=20))
    assert out == [i * 10 for i in range(20)], "each input exactly once"
    assert len(read(floe, dst, "read_committed")) == 20


def test_a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction(floe, topic_name):
    create_topic(floe.bootstrap, topic_name)
    txn_id = f"zombie-{topic_name}"
    zombie = txn_producer(floe, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic_name, value=b"from-the-zombie")
    zombie.flush(10)
    successor = txn_producer(floe, txn_id)
    with pytest.raises(KafkaException) as e:
        zombie.produce(topic_name, value=b"too-late")
        zombie.flush(10)
        zombie.commit_transaction(30)
    assert e.value.args[0].fatal() or e.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
    successor.begin_transaction()
    successor.produce(topic_name, value=b"from-the-successor")
    successor.commit_transaction(30)
    assert read(floe, topic_name, "read_committed", expect=1) == ["from-the-successor"]
    assert read(floe, topic_name, "read_committed") == ["from-the-successor"]


def test_an_abandoned_transaction_times_out_and_is_aborted(tmp_path, topic_name):
    floe = Floe(floe_binary(), tmp_path / "floe", env={"FLOE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "200"}).start()
    try:
        create_topic(floe.bootstrap, topic_name)
        p = open_then_plain(floe, topic_name, f"slow-{topic_name}", b"abandoned", b"after", **{"transaction.timeout.ms": 2000})
        # The coordinator aborts it after 2 s: the LSO moves past it and only "after" is seen.
        assert read(floe, topic_name, "read_committed", expect=1, timeout=20) == ["after"]
        with pytest.raises(KafkaException):
            p.commit_transaction(10)
    finally:
        floe.stop(signal.SIGKILL)


def test_a_transaction_open_across_a_broker_kill_commits_whole(fresh_floe, topic_name):
    floe = fresh_floe
    create_topic(floe.bootstrap, topic_name, partitions=3)
    p = txn_producer(floe, f"restart-{topic_name}")
    p.begin_transaction()
    for i in range(30):
        p.produce(topic_name, key=str(i).encode(), value=f"v{i}".encode())
    p.flush(10)
    floe.restart(signal.SIGKILL)
    assert read(floe, topic_name, "read_committed", idle=1.5) == [], "still open after the restart"
    p.commit_transaction(60)
    got = read(floe, topic_name, "read_committed", expect=30)
    assert sorted(got, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(30)]


def test_a_table_topic_holds_only_committed_records_and_waits_for_open_ones(fresh_floe):
    import json
    import urllib.error
    import urllib.request

    from test_table_topic import create_table_topic, read_table

    floe = fresh_floe
    create_table_topic(floe, "payments", partitions=2, convert_value_type="json", transform_value_type="flatten")
    p = txn_producer(floe, "payments-app")

    def txn(ids, commit):
        p.begin_transaction()
        for i in ids:
            p.produce("payments", key=str(i).encode(), value=json.dumps({"id": i, "amount": i * 10}).encode())
        p.flush(10)
        if commit is not None:
            (p.commit_transaction if commit else p.abort_transaction)(30)

    txn(range(0, 50), True)
    txn(range(50, 80), False)
    txn(range(80, 100), True)
    txn(range(100, 110), None)  # left open: the table must not reach it
    # Wait until the table stands at each partition's LSO (the read_committed end), then look.
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
    lso = {str(i): c.get_watermark_offsets(TopicPartition("payments", i), timeout=10, cached=False)[1] for i in range(2)}
    c.close()
    status = {}
    deadline = time.time() + 40
    while time.time() < deadline and status.get("offsets") != lso:
        try:
            status = json.load(urllib.request.urlopen(f"{floe.admin_url}/v1/table-topics/payments"))
        except urllib.error.HTTPError:
            pass  # not started yet
        time.sleep(0.2)
    assert status.get("offsets") == lso, (status, lso)
    rows = read_table(floe, "payments", 70)
    assert sorted(r["id"] for r in rows) == list(range(0, 50)) + list(range(80, 100))
    p.commit_transaction(30)
    rows = read_table(floe, "payments", 80)
    assert sorted(r["id"] for r in rows) == list(range(0, 50)) + list(range(80, 110))
