"""Schema-registry records into Table Topics: Avro from confluent-kafka's AvroSerializer across four
schema versions, and Protobuf from its ProtobufSerializer, both against Floe's built-in registry;
the tables read by pyiceberg and DuckDB, compared row by row with what was produced."""
import datetime
import decimal
import json

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from readers import duckdb_rows, wait_rows
from test_schema_registry import order_class
from test_table_topic import create_table_topic

BASE = {"type": "record", "name": "Reading", "namespace": "floe.test", "fields": [
    {"name": "id", "type": "long"},
    {"name": "sensor", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
]}
# Each version adds one optional field with a default: backward compatible, so the registry takes it
# and the table gains a column; rows written before read null there.
ADDED = [
    {"name": "unit", "type": ["null", "string"], "default": None},
    {"name": "quality", "type": ["null", "double"], "default": None},
    {"name": "tags", "type": ["null", {"type": "array", "items": "string"}], "default": None},
]
VERSIONS = [json.dumps({**BASE, "fields": BASE["fields"] + ADDED[:n]}) for n in range(4)]
PER_VERSION = 25


def reading(v, i):
    """Record i written with schema version v (0-based)."""
    r = {"id": v * 1000 + i, "sensor": f"s{i % 3}", "at": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=i),
         "price": decimal.Decimal(f"{i}.{v}5")}
    if v >= 1:
        r["unit"] = "C" if i % 2 else None
    if v >= 2:
        r["quality"] = i / 10
    if v >= 3:
        r["tags"] = [f"t{j}" for j in range(i % 3)]
    return r


def test_avro_across_four_schema_versions(fresh_floe):
    floe = fresh_floe
    topic = "readings"
    create_table_topic(floe, topic, partitions=2, convert_value_type="by_schema_id", transform_value_type="flatten")
    sr = SchemaRegistryClient({"url": floe.registry_url})
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    ctx = SerializationContext(topic, MessageField.VALUE)
    produced = []
    for v, schema in enumerate(VERSIONS):
        ser = AvroSerializer(sr, schema, conf={"auto.register.schemas": True})
        for i in range(PER_VERSION):
            r = reading(v, i)
            produced.append(r)
            p.produce(topic, key=str(r["id"]).encode(), value=ser(r, ctx))
        assert p.flush(30) == 0
        # Each version lands in its own commit, so the table evolves four times.
        assert len(wait_rows(floe, topic, lambda rows, n=len(produced): len(rows) >= n)) == len(produced)
    assert [v.version for v in [sr.get_latest_version(f"{topic}-value")]] == [4]

    want = lambda r: (r["id"], r["sensor"], r["at"], r["price"], r.get("unit"), r.get("quality"), r.get("tags"))
    rows = wait_rows(floe, topic, lambda rows: len(rows) >= len(produced))
    got = sorted((r["id"], r["sensor"], r["at"], r["price"], r["unit"], r["quality"], r["tags"]) for r in rows)
    assert got == sorted(want(r) for r in produced)
    assert wait_rows(floe, topic + "_dlq", lambda r: True, timeout=0) == []

    columns = ["id", "sensor", "price", "unit", "quality"]
    duck = sorted(duckdb_rows(floe, topic, columns))
    assert duck == sorted((r["id"], r["sensor"], r["price"], r.get("unit"), r.get("quality")) for r in produced)


def test_protobuf_through_the_registry(fresh_floe):
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    floe = fresh_floe
    topic = "orders_pb"
    create_table_topic(floe, topic, partitions=2, convert_value_type="by_schema_id", transform_value_type="flatten")
    Order = order_class()
    ser = ProtobufSerializer(Order, SchemaRegistryClient({"url": floe.registry_url}), {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(200):
        p.produce(topic, value=ser(Order(id=i, customer=f"c{i % 7}", tags=[f"x{j}" for j in range(i % 4)]), ctx))
    p.produce(topic, value=b"\x00\x00\x00\x00\x7fnot protobuf")  # an id the registry never gave
    assert p.flush(30) == 0
    rows = wait_rows(floe, topic, lambda rows: len(rows) >= 200)
    assert sorted((r["id"], r["customer"], r["tags"]) for r in rows) == [(i, f"c{i % 7}", [f"x{j}" for j in range(i % 4)]) for i in range(200)]
    dlq = wait_rows(floe, topic + "_dlq", lambda r: len(r) >= 1)
    assert len(dlq) == 1 and "127" in dlq[0]["_error"], dlq
    assert sorted(duckdb_rows(floe, topic, ["id", "customer"])) == [(i, f"c{i % 7}") for i in range(200)]


def test_protobuf_from_a_proto_file(floe, tmp_path):
    """convert.value.type=protobuf_file: plain Protobuf messages described by a .proto file on the
    broker's host (with an import), no registry involved; a message that does not parse goes to the DLQ."""
    (tmp_path / "money.proto").write_text('syntax = "proto3";\npackage shop;\nmessage Money { int64 cents = 1; string currency = 2; }\n')
    (tmp_path / "order.proto").write_text('syntax = "proto3";\npackage shop;\nimport "money.proto";\n'
                                          'message Order { int64 id = 1; string customer = 2; Money total = 3; repeated string tags = 4; }\n')
    topic = "orders_pbfile"
    create_table_topic(floe, topic, convert_value_type="protobuf_file", transform_value_type="flatten",
                       convert_value_protobuf_file=str(tmp_path / "order.proto"), convert_value_protobuf_message_full_name="shop.Order")
    Order = shop_order_class()
    p = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(50):
        o = Order(id=i, customer=f"c{i % 3}", tags=[f"t{j}" for j in range(i % 3)])
        o.total.cents, o.total.currency = i * 100, "EUR"
        p.produce(topic, value=o.SerializeToString())
    p.produce(topic, value=b"\xff\xff\xff not protobuf")
    assert p.flush(30) == 0
    rows = wait_rows(floe, topic, lambda rows: len(rows) >= 50)
    assert sorted((r["id"], r["customer"], r["total"]["cents"], r["total"]["currency"], r["tags"]) for r in rows) == \
        [(i, f"c{i % 3}", i * 100, "EUR", [f"t{j}" for j in range(i % 3)]) for i in range(50)]
    dlq = wait_rows(floe, topic + "_dlq", lambda r: len(r) >= 1)
    assert len(dlq) == 1 and dlq[0]["_error"], dlq
    assert sorted(duckdb_rows(floe, topic, ["id", "customer"])) == [(i, f"c{i % 3}") for i in range(50)]


def shop_order_class():
    """shop.Order (with its shop.Money import) as a Python class built at run time, no protoc needed."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    T = descriptor_pb2.FieldDescriptorProto
    money = descriptor_pb2.FileDescriptorProto(name="money.proto", package="shop", syntax="proto3")
    m = money.message_type.add(name="Money")
    m.field.add(name="cents", number=1, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    m.field.add(name="currency", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    order = descriptor_pb2.FileDescriptorProto(name="order.proto", package="shop", syntax="proto3", dependency=["money.proto"])
    o = order.message_type.add(name="Order")
    o.field.add(name="id", number=1, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    o.field.add(name="customer", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    o.field.add(name="total", number=3, type=T.TYPE_MESSAGE, type_name=".shop.Money", label=T.LABEL_OPTIONAL)
    o.field.add(name="tags", number=4, type=T.TYPE_STRING, label=T.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(money)
    pool.Add(order)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
