"""Table Topics end to end: JSON records produced with confluent-kafka land in an Iceberg table that
pyiceberg reads through Floe's REST catalog; a poison record goes to the dead-letter table; a kill -9
in the middle neither loses nor duplicates a record."""
import glob
import os
import json
import random
import signal
import subprocess
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError

from conftest import floe_binary

TT = "automq.table.topic."


def create_table_topic(floe, name, partitions=2, **configs):
    cfg = {TT + "enable": "true", TT + "commit.interval.ms": "500"}
    cfg.update({TT + k.replace("_", "."): v for k, v in configs.items()})
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=cfg)])[name]
    fut.result(timeout=15)


def produce(floe, topic, records):
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for key, value in records:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0


def read_table(floe, name, expect_rows, timeout=40):
    """Rows of default.<name> once it holds at least `expect_rows` (pyiceberg, through the catalog)."""
    cat = RestCatalog("floe", uri=floe.catalog_url)
    deadline = time.time() + timeout
    rows = []
    while time.time() < deadline:
        try:
            rows = cat.load_table(("default", name)).scan().to_arrow().to_pylist()
        except NoSuchTableError:
            rows = []
        if len(rows) >= expect_rows:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"{name}: {len(rows)} rows after {timeout}s, expected {expect_rows}\n{floe.log_tail()}")


def status_when(floe, topic, until, timeout=30):
    """`floe table-topic status TOPIC --json` polled until `until(status)` holds; returns the last
    status. While the table is starting (enabled, its loop not begun) the command says so and
    exits 1: that is waited out, any other failure fails the test."""
    cmd = [floe_binary(), "table-topic", "status", "--admin", floe.admin_url, topic, "--json"]
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            assert "is starting" in out.stderr, out.stderr
        else:
            (st,) = json.loads(out.stdout)
            if until(st):
                break
        time.sleep(0.3)
    return st


def test_json_records_become_rows_and_a_poison_record_goes_to_the_dlq(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "orders", convert_value_type="json", transform_value_type="flatten")
    good = [(f"k{i}".encode(), json.dumps({"id": i, "item": f"thing-{i}", "qty": i % 7}).encode()) for i in range(300)]
    produce(floe, "orders", good[:150] + [(b"bad", b"{not json")] + good[150:])
    rows = read_table(floe, "orders", 300)
    assert len(rows) == 300
    assert sorted((r["id"], r["item"], r["qty"]) for r in rows) == [(i, f"thing-{i}", i % 7) for i in range(300)]
    assert {r["_kafka_key"] for r in rows} == {f"k{i}".encode() for i in range(300)}
    positions = {(r["_kafka_metadata"]["partition"], r["_kafka_metadata"]["offset"]) for r in rows}
    assert len(positions) == 300, "each record once, at its own offset"
    dlq = read_table(floe, "orders_dlq", 1)
    assert [(r["_kafka_key"], r["_kafka_value"]) for r in dlq] == [(b"bad", b"{not json")]
    assert "JSON" in dlq[0]["_error"]
    # The snapshot records where the table stands in the topic.
    snap = RestCatalog("floe", uri=floe.catalog_url).load_table(("default", "orders")).current_snapshot()
    offsets = json.loads(snap.summary.additional_properties["floe.offsets"])
    assert sum(offsets.values()) == 301


def test_schema_evolves_when_records_bring_new_fields(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "evolving", partitions=1, convert_value_type="json", transform_value_type="flatten")
    produce(floe, "evolving", [(None, json.dumps({"id": i}).encode()) for i in range(10)])
    read_table(floe, "evolving", 10)
    produce(floe, "evolving", [(None, json.dumps({"id": i, "extra": f"e{i}"}).encode()) for i in range(10, 20)])
    rows = read_table(floe, "evolving", 20)
    assert sorted((r["id"], r["extra"]) for r in rows) == [(i, None) for i in range(10)] + [(i, f"e{i}") for i in range(10, 20)]


def test_a_large_json_backlog_widens_its_columns_midway_and_keeps_every_row(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "widening", partitions=1, convert_value_type="json", transform_value_type="flatten")
    # Decoded in chunks: from record 4500 on, amounts are doubles and a field appears, so one commit
    # holds rows of an int column, of a double column and of a new one.
    values = [{"id": i, "amount": i * 2} if i < 4500 else {"id": i, "amount": i + 0.5, "note": f"n{i}"} for i in range(5000)]
    produce(floe, "widening", [(None, json.dumps(v).encode()) for v in values])
    rows = read_table(floe, "widening", 5000)
    assert sorted((r["id"], r["amount"], r["note"]) for r in rows) == [(v["id"], float(v["amount"]), v.get("note")) for v in values]


def test_kill_9_during_commits_neither_loses_nor_duplicates(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "crashy", partitions=3, convert_value_type="string")
    sent = 0
    rounds, per_round = 20, 100
    rng = random.Random(7)
    for round_ in range(rounds):
        batch = [(None, f"r{round_}-{i}".encode()) for i in range(per_round)]
        produce(floe, "crashy", batch)
        sent += len(batch)
        # Killed at a random moment: before, during or after a commit (the interval is 500 ms).
        time.sleep(rng.uniform(0.05, 1.2))
        floe.restart(signal.SIGKILL)
    rows = read_table(floe, "crashy", sent)
    time.sleep(1.5)  # one more commit interval: nothing further may appear
    rows = read_table(floe, "crashy", sent)
    values = sorted(r["_kafka_value"] for r in rows)
    assert len(values) == sent, f"{len(values)} rows for {sent} records"
    assert values == sorted(f"r{r}-{i}" for r in range(rounds) for i in range(per_round))


def balances_once_equal(floe, expected, timeout=40):
    """(id, balance) rows of default.accounts, polled until they equal `expected` or time runs out."""
    cat = RestCatalog("floe", uri=floe.catalog_url)
    deadline = time.time() + timeout
    while True:
        got = sorted((r["id"], r["balance"]) for r in cat.load_table(("default", "accounts")).scan().to_arrow().to_pylist())
        if got == expected or time.time() > deadline:
            return got
        time.sleep(0.3)


def test_upsert_replaces_rows_and_tombstones_delete_them(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "accounts", partitions=2, convert_value_type="json", transform_value_type="flatten",
                       upsert_enable="true", id_columns="[id]")
    key = lambda i: json.dumps({"id": i}).encode()
    produce(floe, "accounts", [(key(i), json.dumps({"id": i, "balance": i}).encode()) for i in range(50)])
    read_table(floe, "accounts", 50)
    # Second commit: update 0..19 (twice each: the last one wins), delete 40..49 with tombstones.
    produce(floe, "accounts", [(key(i), json.dumps({"id": i, "balance": -1}).encode()) for i in range(20)]
            + [(key(i), json.dumps({"id": i, "balance": 1000 + i}).encode()) for i in range(20)]
            + [(key(i), None) for i in range(40, 50)])
    expected = sorted([(i, 1000 + i) for i in range(20)] + [(i, i) for i in range(20, 40)])
    cat = RestCatalog("floe", uri=floe.catalog_url)
    got = balances_once_equal(floe, expected)
    assert got == expected, f"{got}\n{floe.log_tail()}"
    summary = cat.load_table(("default", "accounts")).current_snapshot().summary.additional_properties
    assert int(summary["total-position-deletes"]) >= 30, summary
    # After a restart the key index is rebuilt from the table: a later update still replaces.
    floe.restart(signal.SIGKILL)
    produce(floe, "accounts", [(key(5), json.dumps({"id": 5, "balance": 5555}).encode())])
    expected = sorted([(i, 1000 + i) for i in range(20) if i != 5] + [(5, 5555)] + [(i, i) for i in range(20, 40)])
    got = balances_once_equal(floe, expected)
    assert got == expected, f"{got}\n{floe.log_tail()}"


def test_compaction_runs_early_once_enough_files_were_written(fresh_floe):
    """An hour's maintenance interval, but a commit a round: after `compaction.trigger.files`
    data files the loop compacts without waiting for the interval."""
    floe = fresh_floe
    create_table_topic(floe, "early", partitions=1, convert_value_type="json", transform_value_type="flatten", commit_interval_ms="100",
                       compaction_files_min="2", compaction_trigger_files="4", maintenance_interval_ms="3600000")
    cat = RestCatalog("floe", uri=floe.catalog_url)
    rows = 0
    for round_ in range(6):
        produce(floe, "early", [(None, json.dumps({"n": round_ * 10 + i}).encode()) for i in range(10)])
        rows += 10
        read_table(floe, "early", rows)
    deadline = time.time() + 30
    while time.time() < deadline:
        t = cat.load_table(("default", "early"))
        if any(s.summary.operation.value == "replace" for s in t.metadata.snapshots):
            break
        time.sleep(0.3)
    ops = [s.summary.operation.value for s in t.metadata.snapshots]
    assert "replace" in ops, f"no compaction within the hour's interval: {ops}\n{floe.log_tail()}"
    assert sorted(r["n"] for r in t.scan().to_arrow().to_pylist()) == list(range(60))


def test_compaction_and_expiry_keep_every_row_and_the_upsert_index(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "compacting", partitions=1, convert_value_type="json", transform_value_type="flatten",
                       upsert_enable="true", id_columns="[id]", compaction_files_min="2", maintenance_interval_ms="300",
                       expire_snapshot_older_than_hours="0", expire_snapshot_retain_last="2")
    key = lambda i: json.dumps({"id": i}).encode()
    cat = RestCatalog("floe", uri=floe.catalog_url)
    state = {}
    # Six commits: each updates half of the keys of the one before, so files pile up with deletes.
    for round_ in range(6):
        batch = [(i, round_ * 100 + i) for i in range(round_ * 5, round_ * 5 + 20)]
        state.update(batch)
        produce(floe, "compacting", [(key(i), json.dumps({"id": i, "v": v}).encode()) for i, v in batch])
        expected = sorted(state.items())
        got = sorted((r["id"], r["v"]) for r in read_table(floe, "compacting", len(expected)))
        deadline = time.time() + 30
        while got != expected and time.time() < deadline:
            time.sleep(0.3)
            got = sorted((r["id"], r["v"]) for r in cat.load_table(("default", "compacting")).scan().to_arrow().to_pylist())
        assert got == expected, f"round {round_}: {got}\n{floe.log_tail()}"

    def shape():
        t = cat.load_table(("default", "compacting"))
        tasks = list(t.scan().plan_files())
        return t, len(tasks), sum(len(x.delete_files) for x in tasks)

    deadline = time.time() + 30
    t, data_files, delete_files = shape()
    while (data_files > 2 or delete_files > 0 or len(t.metadata.snapshots) > 2) and time.time() < deadline:
        time.sleep(0.3)
        t, data_files, delete_files = shape()
    assert data_files <= 2 and delete_files == 0, f"{data_files} data files, {delete_files} delete files\n{floe.log_tail()}"
    assert len(t.metadata.snapshots) <= 2, "older snapshots expired"
    assert sorted((r["id"], r["v"]) for r in t.scan().to_arrow().to_pylist()) == sorted(state.items())
    assert t.current_snapshot().summary.operation.value == "replace", "the last snapshot is a compaction"
    assert "floe.offsets" in t.current_snapshot().summary.additional_properties, "a compaction carries the offsets on"
    # Files only expired snapshots reached are gone from the warehouse (6 commits wrote 11 or more).
    on_disk = {p.rsplit("/", 1)[1] for p in glob.glob(floe.data_dir + "/**/compacting-*/data/*.parquet", recursive=True)}
    live = {task.file.file_path.rsplit("/", 1)[1] for task in t.scan().plan_files()}
    assert live <= on_disk and len(on_disk) <= 6, f"{len(on_disk)} files left on disk, {len(live)} live"

    # The key index is rebuilt after compaction: an update still replaces its row, also after a kill -9.
    floe.restart(signal.SIGKILL)
    produce(floe, "compacting", [(key(3), json.dumps({"id": 3, "v": -3}).encode())])
    state[3] = -3
    got = []
    deadline = time.time() + 30
    while time.time() < deadline:
        got = sorted((r["id"], r["v"]) for r in cat.load_table(("default", "compacting")).scan().to_arrow().to_pylist())
        if got == sorted(state.items()):
            break
        time.sleep(0.3)
    assert got == sorted(state.items()), f"{got}\n{floe.log_tail()}"


def test_a_paused_table_shows_in_status_and_metrics_and_resumes_when_the_config_is_fixed(fresh_floe):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    floe = fresh_floe
    create_table_topic(floe, "strict", partitions=1, convert_value_type="json", transform_value_type="flatten", errors_tolerance="none")
    produce(floe, "strict", [(None, json.dumps({"n": i}).encode()) for i in range(5)] + [(None, b"oops")]
            + [(None, json.dumps({"n": i}).encode()) for i in range(5, 10)])
    status_cmd = [floe_binary(), "table-topic", "status", "--admin", floe.admin_url]
    st = status_when(floe, "strict", lambda st: st["paused"])
    assert st and "offset 5" in st["paused"] and st["lag_records"] == 11, st
    table = subprocess.run(status_cmd, capture_output=True, text=True, timeout=30).stdout
    assert "paused" in table and "offset 5" in table, table
    metrics = urllib.request.urlopen(floe.admin_url + "/metrics", timeout=10).read().decode()
    assert 'floe_table_topic_paused{topic="strict",table="default.strict"} 1' in metrics
    assert 'floe_table_topic_lag_records{topic="strict",table="default.strict"} 11' in metrics
    assert read_table(floe, "strict", 0, timeout=1) == [], "nothing committed past the bad record"

    # Fixing the config resumes from the same offset: the bad record goes to the DLQ, the rest lands.
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, "strict",
                         incremental_configs=[ConfigEntry(TT + "errors.tolerance", "invalid_data", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    rows = read_table(floe, "strict", 10)
    assert sorted(r["n"] for r in rows) == list(range(10))
    assert [r["_kafka_value"] for r in read_table(floe, "strict_dlq", 1)] == [b"oops"]
    out = subprocess.run(status_cmd + ["strict", "--wait", "--timeout-s", "30", "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (st,) = json.loads(out.stdout)
    assert st["paused"] is None and st["lag_records"] == 0 and st["offsets"] == {"0": 11} and st["invalid_records"] == 1, st
    missing = subprocess.run(status_cmd + ["nope"], capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and "not a Table Topic" in missing.stderr


def test_a_file_no_snapshot_reaches_is_removed_and_committed_files_stay(fresh_floe):
    floe = fresh_floe
    create_table_topic(floe, "orphaned", partitions=1, convert_value_type="string",
                       maintenance_interval_ms="300", orphan_older_than_ms="0")
    produce(floe, "orphaned", [(None, f"v{i}".encode()) for i in range(50)])
    assert len(read_table(floe, "orphaned", 50)) == 50
    (data,) = glob.glob(floe.data_dir + "/**/default/orphaned-*/data", recursive=True)
    # What a crash between upload and commit leaves behind.
    stray = os.path.join(data, "00000000-crashed-before-commit.parquet")
    with open(stray, "wb") as f:
        f.write(b"PAR1 never committed")
    produce(floe, "orphaned", [(None, b"one more")])
    deadline = time.time() + 30
    while os.path.exists(stray) and time.time() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(stray), floe.log_tail()
    rows = read_table(floe, "orphaned", 51)
    assert sorted(r["_kafka_value"] for r in rows) == sorted([f"v{i}" for i in range(50)] + ["one more"])


def test_a_same_named_table_floe_did_not_create_is_left_alone(fresh_floe):
    import pyarrow as pa
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    floe = fresh_floe
    cat = RestCatalog("floe", uri=floe.catalog_url)
    try:
        cat.create_namespace("default")
    except NamespaceAlreadyExistsError:
        pass
    data = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
    theirs = cat.create_table(("default", "theirs"), schema=data.schema)
    theirs.append(data)
    before = cat.load_table(("default", "theirs"))
    create_table_topic(floe, "theirs", partitions=1, convert_value_type="json", transform_value_type="flatten")
    produce(floe, "theirs", [(None, json.dumps({"n": 100 + i}).encode()) for i in range(5)])
    st = status_when(floe, "theirs", lambda st: st.get("last_error")) or {}
    assert "not created by Floe" in (st.get("last_error") or ""), st
    after = cat.load_table(("default", "theirs"))
    assert [s.snapshot_id for s in after.snapshots()] == [s.snapshot_id for s in before.snapshots()]
    assert after.properties == before.properties
    assert sorted(r["n"] for r in after.scan().to_arrow().to_pylist()) == [1, 2, 3]
