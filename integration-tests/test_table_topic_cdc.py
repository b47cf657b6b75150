"""Real Debezium change events (shared/fixtures/debezium) through `flatten_debezium` into keyed Table
Topics: with the keys and tombstones Debezium sends, the final table equals what the source database
holds, read by pyiceberg, DuckDB and Spark."""
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer
from pyiceberg.catalog.rest import RestCatalog

from readers import EXAMPLES, duckdb_rows, spark_rows, spark_session, wait_rows
from test_table_topic import create_table_topic

sys.path.insert(0, os.path.join(EXAMPLES, "debezium-cdc"))
from replay import FIXTURES, debezium_records, source_table  # noqa: E402
from replay import events as read_events  # noqa: E402


def events(name):
    return read_events(os.path.join(FIXTURES, name))


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
    fusion = sorted((r["id"], r["name"], r["description"], round(r["weight"], 4)) for r in datafusion_rows(floe, f"SELECT id, name, description, weight FROM {topic}"))
    assert fusion == expected, "DataFusion (iceberg-datafusion) applies the position deletes"


def datafusion_rows(floe, sql):
    """Rows of a query run by the datafusion-query example (iceberg-datafusion through the REST catalog)."""
    binary = os.environ.get("FLOE_DATAFUSION_QUERY")
    if not binary or not os.path.exists(binary):
        pytest.skip("FLOE_DATAFUSION_QUERY is not set: run the tests through scripts/test.sh")
    out = subprocess.run([binary, "--catalog", floe.catalog_url, "--format", "json", "--sql", sql], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_debezium_example_replays_into_the_source_table(floe):
    """examples/debezium-cdc, as a user runs it, against this node."""
    script = os.path.join(EXAMPLES, "debezium-cdc", "replay.py")
    out = subprocess.run([sys.executable, script, "--bootstrap", floe.bootstrap, "--catalog", floe.catalog_url, "--topic", "example_dbz"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the table equals the source table: 10 rows" in out.stdout, out.stdout
