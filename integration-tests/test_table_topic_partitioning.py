"""`partition.by`: an upsert Table Topic written as a partitioned Iceberg table, its updates as
position deletes in the partitions of the rows they remove, and a live change of `partition.by`
evolving the spec (old files keep theirs) — read back equal by pyiceberg, DuckDB and Spark."""
import json
import signal
import time

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from pyiceberg.catalog.rest import RestCatalog

from readers import duckdb_rows, spark_rows, spark_session, wait_rows
from test_table_topic import TT, create_table_topic, produce

REGIONS = ["eu", "us", "ap"]


@pytest.fixture(scope="module")
def spark():
    s = spark_session()
    yield s
    s.stop()


def send(floe, changes):
    """(id, region, v) upserts, or (id, None, None) tombstones."""
    key = lambda i: json.dumps({"id": i}).encode()
    produce(floe, "parts", [(key(i), None if r is None else json.dumps({"id": i, "region": r, "v": v}).encode()) for i, r, v in changes])


def agree(floe, spark, state):
    """Every reader sees exactly `state` ({id: (region, v)})."""
    expected = sorted((i, r, v) for i, (r, v) in state.items())
    rows = wait_rows(floe, "parts", lambda rs: sorted((x["id"], x["region"], x["v"]) for x in rs) == expected)
    assert sorted((x["id"], x["region"], x["v"]) for x in rows) == expected, floe.log_tail()
    assert sorted(duckdb_rows(floe, "parts", ["id", "region", "v"])) == expected, "DuckDB applies the partitioned position deletes"
    assert sorted(spark_rows(spark, floe, "parts", ["id", "region", "v"])) == expected, "Spark applies the partitioned position deletes"


def files(floe):
    t = RestCatalog("floe", uri=floe.catalog_url).load_table(("default", "parts"))
    return t, [task.file for task in t.scan().plan_files()]


def test_partitioned_upserts_and_a_spec_change_read_right_everywhere(fresh_floe, spark):
    floe = fresh_floe
    create_table_topic(floe, "parts", partitions=2, convert_value_type="json", transform_value_type="flatten",
                       upsert_enable="true", id_columns="[id]", partition_by="[bucket(id, 4), region]",
                       compaction_enable="false")
    state = {i: (REGIONS[i % 3], i) for i in range(60)}
    send(floe, [(i, r, v) for i, (r, v) in state.items()])
    agree(floe, spark, state)

    t, data = files(floe)
    assert [(f.name, str(f.transform)) for f in t.spec().fields] == [("id_bucket", "bucket[4]"), ("region", "identity")]
    partitions = {(f.partition[0], f.partition[1]) for f in data}
    assert len(partitions) == len(data) and {p[1] for p in partitions} == set(REGIONS), partitions
    assert all(0 <= b < 4 for b, _ in partitions)

    # Updates (some moving to another region, so to another partition) and tombstones.
    changes = [(i, "eu" if i % 2 else REGIONS[i % 3], 1000 + i) for i in range(20)] + [(i, None, None) for i in range(50, 60)]
    send(floe, changes)
    for i, r, v in changes:
        if r is None:
            state.pop(i)
        else:
            state[i] = (r, v)
    agree(floe, spark, state)
    t, _ = files(floe)
    assert int(t.current_snapshot().summary.additional_properties["total-position-deletes"]) >= 30

    # A new partition.by: the spec evolves with the next commit; files already written keep theirs.
    old_spec = t.spec().spec_id
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, "parts",
                         incremental_configs=[ConfigEntry(TT + "partition.by", "[truncate(region, 1)]", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    # The loop picks the new config up within a reconcile or two: update keys 20..29 until a
    # commit carries the new spec.
    deadline = time.time() + 30
    round_ = 0
    while True:
        changes = [(i, REGIONS[(i + round_) % 3], 2000 + 100 * round_ + i) for i in range(20, 30)]
        send(floe, changes)
        state.update({i: (r, v) for i, r, v in changes})
        wait_rows(floe, "parts", lambda rs: {x["id"]: x["v"] for x in rs}.get(29) == changes[-1][2])
        t, _ = files(floe)
        if t.spec().spec_id != old_spec or time.time() > deadline:
            break
        round_ += 1
    agree(floe, spark, state)
    t, data = files(floe)
    assert t.spec().spec_id != old_spec and [(f.name, str(f.transform)) for f in t.spec().fields] == [("region_trunc", "truncate[1]")]
    specs = {f.spec_id for f in data}
    assert specs == {old_spec, t.spec().spec_id}, f"old files keep spec {old_spec}, new ones take {t.spec().spec_id}: {specs}"

    # After kill -9 the key index (with each file's partition) is rebuilt from the table: an update
    # of a row in an old-spec file still removes it.
    floe.restart(signal.SIGKILL)
    send(floe, [(35, "us", 3535), (40, None, None)])
    state[35] = ("us", 3535)
    state.pop(40)
    agree(floe, spark, state)

    # Compaction rewrites small files into the current spec, one partition per file.
    res = ConfigResource(ConfigResource.Type.TOPIC, "parts", incremental_configs=[
        ConfigEntry(TT + k, v, incremental_operation=AlterConfigOpType.SET)
        for k, v in {"compaction.enable": "true", "compaction.files.min": "2", "maintenance.interval.ms": "300"}.items()])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    deadline = time.time() + 40
    t, data = files(floe)
    while ({f.spec_id for f in data} != {t.spec().spec_id} or t.current_snapshot().summary.operation.value != "replace") and time.time() < deadline:
        time.sleep(0.3)
        t, data = files(floe)
    assert {f.spec_id for f in data} == {t.spec().spec_id}, floe.log_tail()
    assert len({f.partition[0] for f in data}) == len(data) == 3, [f.partition for f in data]
    agree(floe, spark, state)
