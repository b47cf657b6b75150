"""Floe on a real S3 API (moto_server on loopback): a fresh node recovers every stream from the bucket."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import Floe, floe_binary, free_port
from helpers import consume_all, create_topic, produce


@pytest.fixture(scope="module")
def s3():
    port = free_port()
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except Exception:
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    proc.wait(10)


def make_bucket(endpoint):
    import boto3

    name = f"floe-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.mark.parametrize("wal,sig", [("object", signal.SIGKILL), ("file", signal.SIGTERM)])
def test_a_fresh_node_recovers_everything_from_the_bucket(s3, tmp_path, topic_name, wal, sig):
    bucket = make_bucket(s3)
    url = f"s3://{bucket}?endpoint={s3}&region=us-east-1"
    first = Floe(floe_binary(), tmp_path / "node-a", ["--object-store", url, "--wal", wal]).start()
    try:
        create_topic(first.bootstrap, topic_name, partitions=2)
        values = [f"{wal}-{i}".encode() * 20 for i in range(2000)]
        produce(first.bootstrap, topic_name, values, acks="all", **{"compression.codec": "lz4"})
    finally:
        first.stop(sig)
    # A new node: an empty local directory, the same bucket.
    second = Floe(floe_binary(), tmp_path / "node-b", ["--object-store", url, "--wal", wal]).start()
    try:
        got = consume_all(second.bootstrap, topic_name, len(values))
        assert sorted(m.value() for m in got) == sorted(values)
    finally:
        second.stop()


def test_tables_in_an_s3_warehouse_through_the_catalog(s3, tmp_path):
    import pyarrow as pa
    from pyiceberg.catalog.rest import RestCatalog

    bucket = make_bucket(s3)
    url = f"s3://{bucket}?endpoint={s3}&region=us-east-1"
    node = Floe(floe_binary(), tmp_path / "node", ["--object-store", url]).start()
    try:
        # pyarrow's S3 multipart completion trips over moto; s3fs (fsspec) writes through it fine.
        cat = RestCatalog("floe", uri=node.catalog_url, **{"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO"})
        cat.create_namespace("lake")
        data = pa.table({"id": pa.array(range(10), pa.int64())})
        t = cat.create_table("lake.t", schema=data.schema)
        assert t.location().startswith(f"s3://{bucket}/warehouse/lake/t-"), t.location()
        t.append(data)
        assert cat.load_table("lake.t").scan().to_arrow().column("id").to_pylist() == list(range(10))
    finally:
        node.stop()


def test_a_paused_node_whose_bucket_was_taken_over_acknowledges_nothing_after_it_resumes(s3, tmp_path, topic_name):
    """Two nodes, one bucket, the object WAL: the first is SIGSTOPped, the second takes over, the
    first resumes. Every record the first acknowledged is on the second; nothing produced to the
    first after the takeover is acknowledged, and the first reports itself not ready."""
    from confluent_kafka import Producer

    bucket = make_bucket(s3)
    url = f"s3://{bucket}?endpoint={s3}&region=us-east-1"
    first = Floe(floe_binary(), tmp_path / "node-a", ["--object-store", url, "--wal", "object"]).start()
    second = None
    try:
        create_topic(first.bootstrap, topic_name)
        before = [f"before-{i}".encode() for i in range(300)]
        produce(first.bootstrap, topic_name, before, acks="all")
        first.proc.send_signal(signal.SIGSTOP)
        second = Floe(floe_binary(), tmp_path / "node-b", ["--object-store", url, "--wal", "object"]).start()
        first.proc.send_signal(signal.SIGCONT)

        acked, failed = [], []
        p = Producer({"bootstrap.servers": first.bootstrap, "acks": "all", "message.timeout.ms": 8000, "retries": 2})
        for i in range(200):
            p.produce(topic_name, value=f"after-{i}".encode(),
                      on_delivery=lambda err, msg: (failed if err else acked).append(msg.value()))
        p.flush(30)
        assert len(acked) + len(failed) == 200
        assert acked == [], f"{len(acked)} records acknowledged by a fenced node"
        ready = urllib.request.Request(f"{first.admin_url}/health/ready")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(ready, timeout=10)
        assert e.value.code == 503 and b"fenced" in e.value.read()

        got = consume_all(second.bootstrap, topic_name, len(before))
        assert sorted(m.value() for m in got) == sorted(before), "every acknowledged record is on the new owner"
        more = [b"on-the-new-owner"] * 20
        produce(second.bootstrap, topic_name, more, acks="all")
        assert len(consume_all(second.bootstrap, topic_name, len(before) + 20)) == len(before) + 20
    finally:
        if first.proc and first.proc.poll() is None:
            first.proc.send_signal(signal.SIGCONT)
        first.stop(signal.SIGKILL)
        if second:
            second.stop()


def catalog_call(node, method, path, body=None, headers=None):
    req = urllib.request.Request(node.catalog_url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


SCHEMA = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": True, "type": "long"}]}


@pytest.mark.parametrize("vend", [False, True])
def test_the_catalog_hands_out_no_credentials_and_no_table_reaches_anothers_files(s3, tmp_path, topic_name, vend):
    """Over HTTP, as any client would: the token guards `/v1/config` too; the node's secret key is
    never in a response unless vending is on and an authenticated caller asks; names and
    locations that would reach other tables' files are refused."""
    bucket = make_bucket(s3)
    url = f"s3://{bucket}?endpoint={s3}&region=us-east-1"
    env = {"FLOE_CATALOG_TOKEN": "t0k"}
    if vend:
        env["FLOE_CATALOG_VEND_CREDENTIALS"] = "true"
    node = Floe(floe_binary(), tmp_path / "node", ["--object-store", url], env=env).start()
    auth = {"Authorization": "Bearer t0k"}
    try:
        assert catalog_call(node, "GET", "/v1/config")[0] == 401
        assert catalog_call(node, "GET", "/v1/config", headers={"Authorization": "Bearer t0k-not"})[0] == 401
        status, body = catalog_call(node, "GET", "/v1/config", headers=auth)
        assert status == 200 and "s3.endpoint" in body
        assert "s3.secret-access-key" not in json.loads(body)["defaults"], "config never carries credentials"
        assert catalog_call(node, "POST", "/v1/namespaces", {"namespace": ["lake"]}, auth)[0] == 200
        for bad in ["", "a/b", ".."]:
            assert catalog_call(node, "POST", "/v1/namespaces/lake/tables", {"name": bad, "schema": SCHEMA}, auth)[0] == 400, bad
        status, body = catalog_call(node, "POST", "/v1/namespaces/lake/tables", {"name": "t", "schema": SCHEMA}, auth)
        assert status == 200, body
        t = json.loads(body)
        assert "s3.secret-access-key" not in t["config"], "not asked: never sent"
        for location in [f"s3://{bucket}/warehouse", t["metadata"]["location"], t["metadata"]["location"] + "/data"]:
            status, _ = catalog_call(node, "POST", "/v1/namespaces/lake/tables", {"name": "u", "schema": SCHEMA, "location": location}, auth)
            assert status == 400, location
        status, _ = catalog_call(node, "POST", "/v1/namespaces/lake/register", {"name": "alias", "metadata-location": t["metadata-location"]}, auth)
        assert status == 400, "registering another table's metadata would alias its files"
        status, body = catalog_call(node, "GET", "/v1/namespaces/lake/tables/t", headers={**auth, "X-Iceberg-Access-Delegation": "vended-credentials"})
        assert status == 200
        assert ("s3.secret-access-key" in json.loads(body)["config"]) == vend
        # The Kafka side is unaffected.
        create_topic(node.bootstrap, topic_name)
        produce(node.bootstrap, topic_name, [b"still fine"], acks="all")
        assert [m.value() for m in consume_all(node.bootstrap, topic_name, 1)] == [b"still fine"]
    finally:
        node.stop()


def test_automq_style_bucket_url_and_credentials_carry_over(s3, tmp_path, topic_name, monkeypatch):
    """AutoMQ's compose writes the bucket as `s3.data.buckets=0@s3://bucket?region=…&endpoint=…&pathStyle=true`
    and the keys as KAFKA_S3_ACCESS_KEY / KAFKA_S3_SECRET_KEY: Floe takes both as they are."""
    bucket = make_bucket(s3)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url = f"0@s3://{bucket}?region=us-east-1&endpoint={s3}&pathStyle=true"
    env = {"KAFKA_S3_ACCESS_KEY": "test", "KAFKA_S3_SECRET_KEY": "test", "FLOE_OBJECT_STORE": url, "FLOE_STORAGE__WAL": "object"}
    node = Floe(floe_binary(), tmp_path / "node", env=env).start()
    try:
        create_topic(node.bootstrap, topic_name)
        values = [f"automq-{i}".encode() for i in range(200)]
        produce(node.bootstrap, topic_name, values, acks="all")
    finally:
        node.stop(signal.SIGKILL)
    import boto3

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="test",
                                           aws_secret_access_key="test").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.startswith("wal/") for k in keys), keys
    again = Floe(floe_binary(), tmp_path / "fresh", env=env).start()
    try:
        assert sorted(m.value() for m in consume_all(again.bootstrap, topic_name, len(values))) == sorted(values)
    finally:
        again.stop()
