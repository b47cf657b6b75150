"""The built-in Schema Registry with confluent-kafka's SchemaRegistryClient and serializers;
bytes the serializers produce, decoded by Floe's schema crate (`floe schema decode`)."""

import json
import signal
import subprocess

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import floe_binary
from helpers import create_topic

V1 = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
]})
V2 = json.dumps({**json.loads(V1), "fields": json.loads(V1)["fields"] + [{"name": "note", "type": ["null", "string"], "default": None}]})
V2_BAD = json.dumps({**json.loads(V1), "fields": json.loads(V1)["fields"] + [{"name": "note", "type": "string"}]})


def test_registry_api_with_the_real_client(fresh_floe):
    sr = SchemaRegistryClient({"url": fresh_floe.registry_url})
    id1 = sr.register_schema("orders-value", Schema(V1, "AVRO"))
    id2 = sr.register_schema("orders-value", Schema(V2, "AVRO"))
    assert id1 != id2
    assert sr.get_versions("orders-value") == [1, 2]
    latest = sr.get_latest_version("orders-value")
    assert (latest.version, latest.schema_id) == (2, id2)
    assert json.loads(sr.get_schema(id1).schema_str) == json.loads(V1)
    assert sr.test_compatibility("orders-value", Schema(V2_BAD, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema("orders-value", Schema(V2_BAD, "AVRO"))
    assert e.value.http_status_code == 409
    with pytest.raises(SchemaRegistryError) as e:
        sr.register_schema("broken", Schema("{not json", "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (422, 42201)
    found = sr.lookup_schema("orders-value", Schema(V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, id1)
    assert sr.set_compatibility("orders-value", "FULL") == {"compatibility": "FULL"}
    assert sr.get_compatibility("orders-value") == "FULL"
    sr.register_schema("scratch", Schema('{"type": "string"}', "AVRO"))
    assert sr.delete_subject("scratch") == [1]
    assert "scratch" not in sr.get_subjects()
    assert sr.delete_subject("scratch", permanent=True) == [1]
    with pytest.raises(SchemaRegistryError) as e:
        sr.get_versions("nope")
    assert (e.value.http_status_code, e.value.error_code) == (404, 40401)
    # Durable: after a restart the same ids answer, and a new schema gets a new id.
    fresh_floe.restart(signal.SIGKILL)
    sr = SchemaRegistryClient({"url": fresh_floe.registry_url})
    assert sr.get_latest_version("orders-value").schema_id == id2
    assert sr.get_compatibility("orders-value") == "FULL"
    id3 = sr.register_schema("later", Schema('{"type": "long"}', "AVRO"))
    assert id3 > id2, "ids are never reused"


def test_avro_and_json_serializers_produce_through_floe_and_floe_decodes_them(fresh_floe, topic_name, tmp_path):
    sr = SchemaRegistryClient({"url": fresh_floe.registry_url})
    create_topic(fresh_floe.bootstrap, topic_name)
    ser = AvroSerializer(sr, V1, conf={"auto.register.schemas": True})
    orders = [{"id": i, "customer": f"c{i}", "amount": __import__("decimal").Decimal(f"{i}.25"), "created": 1_700_000_000_000 + i,
               "tags": ["a"] * (i % 3)} for i in range(20)]
    ctx = SerializationContext(topic_name, MessageField.VALUE)
    p = Producer({"bootstrap.servers": fresh_floe.bootstrap})
    framed = []
    for o in orders:
        value = ser(o, ctx)
        framed.append(value)
        p.produce(topic_name, value=value)
    assert p.flush(30) == 0
    schema_id = sr.get_latest_version(f"{topic_name}-value").schema_id
    assert all(f[0] == 0 and int.from_bytes(f[1:5], "big") == schema_id for f in framed)
    c = Consumer({"bootstrap.servers": fresh_floe.bootstrap, "group.id": "sr", "auto.offset.reset": "earliest"})
    c.subscribe([topic_name])
    de = AvroDeserializer(sr)
    got = []
    while len(got) < len(orders):
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(de(m.value(), ctx))
    c.close()
    assert [g["id"] for g in got] == list(range(20))
    # Floe's own decoder reads what the Confluent serializer wrote.
    schema_file = tmp_path / "v1.avsc"
    schema_file.write_text(sr.get_schema(schema_id).schema_str)
    r = subprocess.run([floe_binary(), "schema", "decode", "--schema-file", str(schema_file)],
                       input="\n".join(f.hex() for f in framed) + "\nzz\n", capture_output=True, text=True, timeout=60)
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(rows) == 21
    assert "error" in rows[-1], "a line that is not a record is an error, not a crash"
    for o, row in zip(orders, rows):
        v = row["value"]
        assert row["schema_id"] == schema_id
        assert (v["id"], v["customer"], v["tags"]) == (o["id"], o["customer"], o["tags"])
        assert v["created"] == o["created"] * 1000, "timestamp-millis as microseconds"
        assert __import__("decimal").Decimal(v["amount"]) == o["amount"]
    # JSON Schema serializer through the same registry.
    json_schema = json.dumps({"type": "object", "title": "Ping", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    jser = JSONSerializer(json_schema, sr)
    jctx = SerializationContext(topic_name + "-json", MessageField.VALUE)
    payload = jser({"n": 5}, jctx)
    assert payload[0] == 0
    assert JSONDeserializer(json_schema)(payload, jctx) == {"n": 5}
    assert sr.get_latest_version(topic_name + "-json-value").schema.schema_type == "JSON"


def order_class():
    """A Protobuf message class built at run time from a FileDescriptorProto (no protoc needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="floe_order.proto", package="floe.test", syntax="proto3")
    m = f.message_type.add(name="Order")
    T = descriptor_pb2.FieldDescriptorProto
    m.field.add(name="id", number=1, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    m.field.add(name="customer", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    m.field.add(name="tags", number=3, type=T.TYPE_STRING, label=T.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("floe.test.Order"))


def test_every_serializer_s_bytes_are_decoded_by_floe(fresh_floe, topic_name):
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    sr = SchemaRegistryClient({"url": fresh_floe.registry_url})
    Order = order_class()
    pctx = SerializationContext(topic_name + "-proto", MessageField.VALUE)
    pser = ProtobufSerializer(Order, sr, {"use.deprecated.format": False})
    proto_bytes = [pser(Order(id=i, customer=f"c{i}", tags=["x"] * i), pctx) for i in range(3)]
    assert ProtobufDeserializer(Order, {"use.deprecated.format": False})(proto_bytes[2], pctx).customer == "c2"
    avro_bytes = AvroSerializer(sr, V1)({"id": 9, "customer": "z", "amount": __import__("decimal").Decimal("1.50"),
                                         "created": 5, "tags": []}, SerializationContext(topic_name, MessageField.VALUE))
    json_schema = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}})
    json_bytes = JSONSerializer(json_schema, sr)({"n": 5, "at": "2024-01-01T00:00:00Z"}, SerializationContext(topic_name + "-json", MessageField.VALUE))
    # Produce them through Floe and read the raw bytes back, then let Floe's decoders read them.
    create_topic(fresh_floe.bootstrap, topic_name + "-mixed")
    p = Producer({"bootstrap.servers": fresh_floe.bootstrap})
    for b in proto_bytes + [avro_bytes, json_bytes]:
        p.produce(topic_name + "-mixed", value=b)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": fresh_floe.bootstrap, "group.id": "mixed", "auto.offset.reset": "earliest"})
    c.subscribe([topic_name + "-mixed"])
    raw = []
    while len(raw) < 5:
        m = c.poll(1.0)
        if m is not None and not m.error():
            raw.append(m.value())
    c.close()
    r = subprocess.run([floe_binary(), "schema", "decode", "--registry", fresh_floe.registry_url],
                       input="\n".join(b.hex() for b in raw) + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert all("value" in row for row in rows), rows
    assert [row["value"] for row in rows[:3]] == [{"id": i, "customer": f"c{i}", "tags": ["x"] * i} for i in range(3)]
    assert rows[3]["value"]["id"] == 9 and rows[3]["value"]["customer"] == "z"
    assert rows[4]["value"] == {"n": 5, "at": 1_704_067_200_000_000}
