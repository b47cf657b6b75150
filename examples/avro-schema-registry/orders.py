"""Avro orders from confluent-kafka's AvroSerializer, registered in Floe's built-in Schema Registry,
land in an Iceberg table; then the table is read with pyiceberg and queried with DuckDB.

    python examples/avro-schema-registry/orders.py     # against `floe serve` on the default ports
"""
import argparse
import datetime
import decimal
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from floe_engines import duckdb_attach, duckdb_connection  # noqa: E402

TT = "automq.table.topic."
SCHEMA = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "coupon", "type": ["null", "string"], "default": None},
]})
CUSTOMERS = ["ada", "grace", "linus", "barbara"]


def order(i):
    return {"order_id": i, "customer": CUSTOMERS[i % len(CUSTOMERS)], "amount": decimal.Decimal(f"{10 + i}.{i % 100:02d}"),
            "placed_at": datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=i),
            "coupon": "WELCOME" if i % 5 == 0 else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--registry", default="http://127.0.0.1:8081")
    ap.add_argument("--catalog", default="http://127.0.0.1:8181")
    ap.add_argument("--topic", default="orders_avro")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--timeout-s", type=float, default=60)
    a = ap.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import NoSuchTableError

    config = {TT + "enable": "true", TT + "commit.interval.ms": "1000", TT + "convert.value.type": "by_schema_id",
              TT + "transform.value.type": "flatten"}
    admin = AdminClient({"bootstrap.servers": a.bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(a.topic, num_partitions=2, replication_factor=1, config=config)])[a.topic].result(timeout=15)
    ser = AvroSerializer(SchemaRegistryClient({"url": a.registry}), SCHEMA, conf={"auto.register.schemas": True})
    ctx = SerializationContext(a.topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(a.count):
        p.produce(a.topic, key=str(i).encode(), value=ser(order(i), ctx))
    if p.flush(30) != 0:
        sys.exit("orders: records were not acknowledged")
    print(f"produced {a.count} Avro orders to {a.topic} (schema registered as subject {a.topic}-value)")

    catalog = RestCatalog("floe", uri=a.catalog)
    deadline, rows = time.time() + a.timeout_s, []
    while len(rows) < a.count and time.time() < deadline:
        try:
            # The table exists from the first commit; its columns come with the first Avro schema.
            rows = catalog.load_table(("default", a.topic)).scan().to_arrow().to_pylist()
        except NoSuchTableError:
            pass
        time.sleep(0.5)
    if len(rows) != a.count:
        sys.exit(f"orders: the table holds {len(rows)} rows, not {a.count}")
    total = sum(r["amount"] for r in rows)
    print(f"pyiceberg: {len(rows)} rows, amounts total {total}")

    con = duckdb_connection()
    duckdb_attach(con, a.catalog)
    top = con.execute(f'SELECT customer, count(*), sum(amount) FROM floe."default"."{a.topic}" GROUP BY customer ORDER BY customer').fetchall()
    print("DuckDB: orders per customer")
    for customer, n, amount in top:
        print(f"  {customer:<8} {n:>4} {amount:>10}")
    if sum(n for _, n, _ in top) != a.count or sum(s for _, _, s in top) != total:
        sys.exit("orders: DuckDB and pyiceberg disagree")
    print("pyiceberg and DuckDB agree")


if __name__ == "__main__":
    main()
