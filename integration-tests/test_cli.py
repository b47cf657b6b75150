"""The admin subcommands of the real `floe` binary against a running node, checked with librdkafka
(confluent-kafka): topic create/list/describe/alter/delete, produce and consume of JSON lines, group
list/describe with lag, and one clear line with a non-zero exit on every error."""
import json
import subprocess

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import floe_binary
from helpers import consume_all


def floe_cli(floe, *args, stdin=None, check=True):
    out = subprocess.run([floe_binary(), *args, "--bootstrap", floe.bootstrap], input=stdin, capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_topic_lifecycle(floe, topic_name):
    out = floe_cli(floe, "topic", "create", topic_name, "--partitions", "3", "--config", "retention.ms=3600000")
    assert topic_name in out.stdout
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    assert admin.describe_configs([res])[res].result(timeout=10)["retention.ms"].value == "3600000"

    listed = json.loads(floe_cli(floe, "topic", "list", "--json").stdout)
    assert {"name": topic_name, "partitions": 3} in listed
    assert topic_name in floe_cli(floe, "topic", "list").stdout.split()

    floe_cli(floe, "topic", "alter", topic_name, "--config", "retention.ms=7200000", "--config", "automq.table.topic.enable=true")
    got = admin.describe_configs([res])[res].result(timeout=10)
    assert got["retention.ms"].value == "7200000" and got["automq.table.topic.enable"].value == "true"
    floe_cli(floe, "topic", "alter", topic_name, "--delete-config", "automq.table.topic.enable")
    desc = json.loads(floe_cli(floe, "topic", "describe", topic_name, "--json").stdout)
    configs = {c["name"]: c["value"] for c in desc["configs"]}
    assert configs.get("retention.ms") == "7200000" and "automq.table.topic.enable" not in configs, configs
    assert [p["partition"] for p in desc["partitions"]] == [0, 1, 2]

    # A bad combination is refused by the broker; the CLI says why on one line.
    bad = floe_cli(floe, "topic", "alter", topic_name, "--config", "automq.table.topic.upsert.enable=true", check=False)
    assert bad.returncode != 0 and "InvalidConfig" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr

    floe_cli(floe, "topic", "delete", topic_name)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_produce_places_keys_like_the_java_client_and_consume_prints_them(floe, topic_name):
    floe_cli(floe, "topic", "create", topic_name, "--partitions", "4")
    lines = "".join(json.dumps({"id": f"user-{i}", "n": i}) + "\n" for i in range(300))
    out = floe_cli(floe, "produce", topic_name, "--key-field", "id", stdin=lines)
    assert "produced 300 records" in out.stderr

    # librdkafka's murmur2 partitioner is the Java client's: the same key must land on the same partition.
    msgs = consume_all(floe.bootstrap, topic_name, 300)
    assert sorted(json.loads(m.value())["n"] for m in msgs) == list(range(300))
    placed = {m.key().decode(): m.partition() for m in msgs}
    ref_topic = topic_name + "-ref"
    floe_cli(floe, "topic", "create", ref_topic, "--partitions", "4")
    p = Producer({"bootstrap.servers": floe.bootstrap, "partitioner": "murmur2"})
    for key in placed:
        p.produce(ref_topic, key=key.encode(), value=b"x")
    assert p.flush(30) == 0
    ref = {m.key().decode(): m.partition() for m in consume_all(floe.bootstrap, ref_topic, 300)}
    assert placed == ref
    assert len(set(placed.values())) == 4

    printed = [json.loads(line) for line in floe_cli(floe, "consume", topic_name).stdout.splitlines()]
    assert len(printed) == 300
    assert sorted(r["value"]["n"] for r in printed) == list(range(300))
    assert all(r["key"] == r["value"]["id"] and r["partition"] == placed[r["key"]] for r in printed)
    five = floe_cli(floe, "consume", topic_name, "--partition", "1", "--from", "2", "--max-messages", "5").stdout.splitlines()
    assert [json.loads(line)["offset"] for line in five] == [2, 3, 4, 5, 6]


def test_consume_output_round_trips_through_produce_envelope(floe, topic_name):
    floe_cli(floe, "topic", "create", topic_name)
    p = Producer({"bootstrap.servers": floe.bootstrap})
    p.produce(topic_name, key=b"k1", value=b'{"a": 1}', headers=[("trace", b"abc")])
    p.produce(topic_name, key=b"k2", value=None)
    p.produce(topic_name, key=None, value=bytes([0, 159, 146, 150]))
    assert p.flush(30) == 0
    printed = floe_cli(floe, "consume", topic_name).stdout
    rows = [json.loads(line) for line in printed.splitlines()]
    assert [(r["key"], r["value"], r["headers"]) for r in rows] == [
        ("k1", {"a": 1}, {"trace": "abc"}), ("k2", None, {}), (None, {"hex": "009f9296"}, {})]

    copy = topic_name + "-copy"
    floe_cli(floe, "topic", "create", copy)
    floe_cli(floe, "produce", copy, "--envelope", stdin="\n".join(printed.splitlines()[:2]) + "\n")
    got = consume_all(floe.bootstrap, copy, 2)
    assert [(m.key(), m.value(), m.headers()) for m in got] == [(b"k1", b'{"a":1}', [("trace", b"abc")]), (b"k2", None, None)]


def test_group_list_and_describe_show_lag(floe, topic_name):
    floe_cli(floe, "topic", "create", topic_name, "--partitions", "2")
    floe_cli(floe, "produce", topic_name, "--key-field", "k", stdin="".join(json.dumps({"k": str(i)}) + "\n" for i in range(40)))
    group = "cli-" + topic_name
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic_name])
    seen = 0
    while seen < 40:
        m = c.poll(5)
        assert m is not None and not m.error()
        seen += 1
    # Commit 10 records short of the end of each partition.
    ends = {p: c.get_watermark_offsets(TopicPartition(topic_name, p))[1] for p in (0, 1)}
    c.commit(offsets=[TopicPartition(topic_name, p, max(ends[p] - 10, 0)) for p in (0, 1)], asynchronous=False)
    listed = json.loads(floe_cli(floe, "group", "list", "--json").stdout)
    assert any(g["group"] == group and g["state"] == "Stable" for g in listed), listed
    desc = json.loads(floe_cli(floe, "group", "describe", group, "--json").stdout)
    assert desc["state"] == "Stable" and len(desc["members"]) == 1
    assert {(o["partition"], o["lag"]) for o in desc["offsets"]} == {(p, min(10, ends[p])) for p in (0, 1)}
    human = floe_cli(floe, "group", "describe", group).stdout
    assert "LAG" in human and topic_name in human
    c.close()


def test_errors_are_one_line_and_a_non_zero_exit(floe, topic_name):
    missing = floe_cli(floe, "topic", "describe", "no-such-topic", check=False)
    assert missing.returncode != 0 and "UnknownTopicOrPartition" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    floe_cli(floe, "topic", "create", topic_name)
    bad = floe_cli(floe, "produce", topic_name, stdin='{"ok": 1}\n{"ok": 2}\nnot json\n{"ok": 4}\n', check=False)
    assert bad.returncode != 0 and "line 3: not JSON" in bad.stderr and "2 records before it were produced" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    # The lines before the bad one were produced, the ones after it were not.
    assert sorted(m.value() for m in consume_all(floe.bootstrap, topic_name, 2)) == [b'{"ok": 1}', b'{"ok": 2}']
    parts = AdminClient({"bootstrap.servers": floe.bootstrap}).list_topics(topic_name, timeout=10).topics[topic_name].partitions
    c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "watermarks"})
    assert sum(c.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10)[1] for p in parts) == 2
    c.close()

    unreachable = subprocess.run([floe_binary(), "topic", "list", "--bootstrap", "127.0.0.1:1"], capture_output=True, text=True, timeout=30)
    assert unreachable.returncode != 0 and "cannot reach Kafka at 127.0.0.1:1" in unreachable.stderr


def test_table_topic_status_wait_right_after_create_waits_for_the_table(floe, topic_name):
    """The README's tour: `status --wait` straight after `topic create` waits for the table to
    start (its config enables it) instead of answering that the topic is not a Table Topic."""
    floe_cli(floe, "topic", "create", topic_name, "--config", "automq.table.topic.enable=true",
             "--config", "automq.table.topic.commit.interval.ms=500", "--config", "automq.table.topic.convert.value.type=json")
    out = subprocess.run([floe_binary(), "table-topic", "status", topic_name, "--wait", "--timeout-s", "30", "--json", "--admin", floe.admin_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["topic"] == topic_name
    # A topic that is not a Table Topic is still told at once.
    plain = topic_name + "-plain"
    floe_cli(floe, "topic", "create", plain)
    out = subprocess.run([floe_binary(), "table-topic", "status", plain, "--wait", "--timeout-s", "30", "--admin", floe.admin_url],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "not a Table Topic" in out.stderr, out.stderr


def test_txn_list_and_describe_show_an_open_transaction(floe, topic_name):
    floe_cli(floe, "topic", "create", topic_name, "--partitions", "2")
    txn_id = f"cli-{topic_name}"
    p = Producer({"bootstrap.servers": floe.bootstrap, "transactional.id": txn_id})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic_name, value=b"open", partition=1)
    p.flush(10)
    listed = json.loads(floe_cli(floe, "txn", "list", "--state", "Ongoing", "--json").stdout)
    assert any(t["transactional_id"] == txn_id and t["state"] == "Ongoing" for t in listed), listed
    desc = json.loads(floe_cli(floe, "txn", "describe", txn_id, "--json").stdout)
    assert (desc["state"], desc["partitions"]) == ("Ongoing", [[topic_name, 1]]), desc
    p.commit_transaction(30)
    desc = json.loads(floe_cli(floe, "txn", "describe", txn_id, "--json").stdout)
    assert desc["state"] == "CompleteCommit" and desc["partitions"] == []
    assert "Ongoing" not in floe_cli(floe, "txn", "list").stdout.split()
    bad = floe_cli(floe, "txn", "describe", "no-such-id", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
