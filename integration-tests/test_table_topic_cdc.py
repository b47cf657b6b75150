"""Real Debezium change events (shared/fixtures/debezium) through `flatten_debezium` into keyed Table
Topics: with the keys and tombstones Debezium sends, the final table equals what the source database
holds, read by pyiceberg, DuckDB and Spark."""
import json
import os

import pytest
from confluent_kafka import Producer
from pyiceberg.catalog.rest import RestCatalog

from readers import duckdb_rows, spark_rows, spark_session, wait_rows
from test_table_topic import create_table_topic

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "debezium")
KEY_SCHEMA = {"type": "struct", "optional": False, "name": "fullfillment.inventory.products.Key",
              "fields": [{"type": "int32", "optional": False, "field": "id"}]}


def events(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return [line for line in f.read().splitlines() if line.strip()]


def envelope(line):
    v = json.loads(line)
    return v["payload"] if "payload" in v and "schema" in v else v


def source_table(lines, last_deleted_id):
    """What the source table holds after the events: (id, name, description, weight) rows."""
    rows = {}
    for line in lines:
        e = envelope(line)
        if e["op"] == "d":
            rows.pop((e["before"] or {}).get("id", last_deleted_id), None)
        else:
            rows[e["after"]["id"]] = e["after"]
    return sorted((r["id"], r["name"], r["description"], round(r["weight"], 4)) for r in rows.values())


def debezium_records(lines, with_key_schema, last_deleted_id):
    """(key, value) as Debezium's JSON converter sends them: a key per event, a tombstone after each delete."""
    out = []
    for line in lines:
        e = envelope(line)
        image = e["after"] or e["before"] or {"id": last_deleted_id}
        key = {"schema": KEY_SCHEMA, "payload": {"id": image["id"]}} if with_key_schema else {"id": image["id"]}
        key = json.dumps(key).encode()
        out.append((key, line.encode()))
        if e["op"] == "d":
            out.append((key, None))
    return out


# fixture, key carries a Connect schema, id columns. The replica-identity stream's final delete
# names no row in its value (before and after are null): only its key says row 111 went.
CASES = [
    ("mysql-schema-include.jsonl", True, "[_from_debezium_key_]"),
    ("postgres-schema-include.jsonl", True, "[id]"),
    ("postgres-schema-exclude.jsonl", False, "[id]"),
    ("postgres-replica-identity.jsonl", False, "[_from_debezium_key_]"),
]


@pytest.fixture(scope="module")
def spark():
    s = spark_session()
    yield s
    s.stop()


@pytest.mark.parametrize("fixture,key_schema,ids", CASES, ids=[c[0].split(".")[0] for c in CASES])
def test_debezium_fixture_gives_the_source_table(floe, spark, fixture, key_schema, ids):
    lines = events(fixture)
    deleted = 111
    expected = source_table(lines, deleted)
    assert len(expected) == 10 and all(r[0] != deleted for r in expected), "9 snapshot rows, 2 inserts, 111 deleted"
    topic = "dbz_" + fixture.split(".")[0].replace("-", "_")
    create_table_topic(floe, topic, convert_value_type="json", convert_key_type="json",
                       transform_value_type="flatten_debezium", id_columns=ids)
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    records = debezium_records(lines, key_schema, deleted)
    # The snapshot first, committed on its own, so the changes after it remove committed rows
    # (position deletes), not only rows of their own commit.
    for key, value in records[:9]:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0
    assert len(wait_rows(floe, topic, lambda rows: len(rows) == 9)) == 9
    for key, value in records[9:]:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0

    as_rows = lambda rows: sorted((r["id"], r["name"], r["description"], round(r["weight"], 4)) for r in rows)
    got = as_rows(wait_rows(floe, topic, lambda rows: as_rows(rows) == expected))
    assert got == expected, f"{got}\n{floe.log_tail()}"
    summary = RestCatalog("floe", uri=floe.catalog_url).load_table(("default", topic)).current_snapshot().summary
    assert int(summary.additional_properties["total-position-deletes"]) >= 2, "the updates of rows 106 and 107 are position deletes"
    ops = sorted({r["_cdc"]["op"] for r in wait_rows(floe, topic, lambda r: True)})
    assert set(ops) <= {"I", "U"}, "deleted rows are gone, not kept with op D"
    assert wait_rows(floe, topic + "_dlq", lambda r: True, timeout=0) == [], "no event was rejected"
    columns = ["id", "name", "description", "weight"]
    duck = sorted((i, n, d, round(w, 4)) for i, n, d, w in duckdb_rows(floe, topic, columns))
    assert duck == expected, "DuckDB applies the position deletes"
    sparks = sorted((i, n, d, round(w, 4)) for i, n, d, w in spark_rows(spark, floe, topic, columns))
    assert sparks == expected, "Spark applies the position deletes"
