"""The Schema Registry with credentials: confluent-kafka's SchemaRegistryClient with HTTP Basic
(`basic.auth.user.info`), Bearer tokens, read-only callers, and everything refused."""

import base64
import json
import urllib.error
import urllib.request

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from conftest import Floe, floe_binary
from test_oauthbearer import Idp
from test_security import create_user, metric

SCHEMA = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]})


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry-auth")
    data = tmp / "floe"
    data.mkdir()
    create_user(data, "writer", "writer-pw", "SCRAM-SHA-256")
    create_user(data, "reader", "reader-pw", "SCRAM-SHA-512")
    idp = Idp("k")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [idp.jwk]}))
    config = tmp / "floe.toml"
    config.write_text(f'schema_registry_auth = true\nschema_registry_writers = ["User:writer", "User:ci-bot"]\nsasl_oauthbearer_jwks_file = "{jwks}"\n'
                      'sasl_oauthbearer_expected_issuer = "https://idp.test"\nsasl_oauthbearer_expected_audience = "floe"\n')
    f = Floe(floe_binary(), data, extra=["--config", str(config)]).start()
    yield f, idp
    f.stop()


def client(node, user_info):
    return SchemaRegistryClient({"url": node.registry_url, "basic.auth.user.info": user_info})


def status(url, method="GET", headers=None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_basic_auth_writers_write_and_readers_read(node):
    f, _ = node
    sid = client(f, "writer:writer-pw").register_schema("orders-value", Schema(SCHEMA, "AVRO"))
    reader = client(f, "reader:reader-pw")
    assert json.loads(reader.get_schema(sid).schema_str) == json.loads(SCHEMA)
    assert reader.lookup_schema("orders-value", Schema(SCHEMA, "AVRO")).schema_id == sid, "a lookup is a read"
    with pytest.raises(SchemaRegistryError) as e:
        reader.register_schema("orders-value", Schema(SCHEMA.replace("Order", "Order2"), "AVRO"))
    assert e.value.http_status_code == 403


def test_missing_and_wrong_credentials_are_refused(node):
    f, _ = node
    before = metric(f.admin_url, "floe_sasl_authentications_total", '{result="failed"}')
    assert status(f"{f.registry_url}/subjects") == 401
    with pytest.raises(SchemaRegistryError) as e:
        client(f, "writer:wrong").get_subjects()
    assert e.value.http_status_code == 401
    with pytest.raises(SchemaRegistryError):
        client(f, "nobody:x").get_subjects()
    assert metric(f.admin_url, "floe_sasl_authentications_total", '{result="failed"}') >= before + 2


def test_bearer_tokens_from_the_identity_provider(node):
    f, idp = node
    good, _ = idp.token(sub="ci-bot")
    hdr = {"Authorization": f"Bearer {good}", "Content-Type": "application/vnd.schemaregistry.v1+json"}
    body = json.dumps({"schema": SCHEMA.replace("Order", "Invoice")}).encode()
    assert status(f"{f.registry_url}/subjects/invoices-value/versions", "POST", hdr, body) == 200, "ci-bot is a writer"
    reader_token, _ = idp.token(sub="dashboards")
    assert status(f"{f.registry_url}/subjects", headers={"Authorization": f"Bearer {reader_token}"}) == 200
    assert status(f"{f.registry_url}/subjects/invoices-value/versions", "POST",
                  {**hdr, "Authorization": f"Bearer {reader_token}"}, body) == 403
    expired, _ = idp.token(lifetime_s=-120)
    assert status(f"{f.registry_url}/subjects", headers={"Authorization": f"Bearer {expired}"}) == 401
    basic_garbage = base64.b64encode(b"no-colon").decode()
    assert status(f"{f.registry_url}/subjects", headers={"Authorization": f"Basic {basic_garbage}"}) == 401


def test_table_topics_resolve_schemas_from_an_external_registry_with_basic_auth(node, tmp_path):
    """A second node whose Table Topics read schemas from the first node's registry (AutoMQ's
    `schema.registry.url`), logging in with HTTP Basic."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from test_table_topic import create_table_topic, read_table

    registry, _ = node
    writer = client(registry, "writer:writer-pw")
    serialize = AvroSerializer(writer, SCHEMA)
    floe = Floe(floe_binary(), tmp_path / "tables", env={"FLOE_TABLE_SCHEMA_REGISTRY_URL": registry.registry_url,
                                                          "FLOE_TABLE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "reader:reader-pw"}).start()
    try:
        create_table_topic(floe, "ext_orders", partitions=1, convert_value_type="by_schema_id", transform_value_type="flatten")
        p = Producer({"bootstrap.servers": floe.bootstrap})
        for i in range(5):
            p.produce("ext_orders", value=serialize({"id": i}, SerializationContext("ext_orders", MessageField.VALUE)))
        assert p.flush(10) == 0
        rows = read_table(floe, "ext_orders", 5)
        assert sorted(r["id"] for r in rows) == list(range(5))
        # The schema came from the other node's registry: this node's own has none.
        with urllib.request.urlopen(f"{floe.registry_url}/subjects", timeout=10) as r:
            assert json.load(r) == []
    finally:
        floe.stop()
    # With a wrong password the registry refuses, and the records are dead letters that say so.
    floe = Floe(floe_binary(), tmp_path / "refused", env={"FLOE_TABLE_SCHEMA_REGISTRY_URL": registry.registry_url,
                                                           "FLOE_TABLE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "reader:wrong"}).start()
    try:
        create_table_topic(floe, "ext_refused", partitions=1, convert_value_type="by_schema_id", transform_value_type="flatten")
        p = Producer({"bootstrap.servers": floe.bootstrap})
        p.produce("ext_refused", value=serialize({"id": 1}, SerializationContext("ext_refused", MessageField.VALUE)))
        assert p.flush(10) == 0
        dlq = read_table(floe, "ext_refused_dlq", 1)
        assert "401" in dlq[0]["_error"], dlq[0]["_error"]
    finally:
        floe.stop()
