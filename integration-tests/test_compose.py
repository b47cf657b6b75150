"""No Docker engine runs here: the compose file is checked by parsing it, and its settings against Floe's."""

import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_compose_wires_minio_a_rest_catalog_and_floe():
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        c = yaml.safe_load(f)
    s = c["services"]
    assert set(s) >= {"minio", "mc", "rest", "floe"}
    assert s["minio"]["image"].startswith("minio/minio") and "9000:9000" in s["minio"]["ports"]
    assert s["rest"]["image"].startswith("apache/iceberg-rest-fixture") and "8181:8181" in s["rest"]["ports"]
    assert s["floe"]["build"] == "." and os.path.exists(os.path.join(ROOT, "Dockerfile"))
    assert {"9092:9092", "8081:8081"} <= set(s["floe"]["ports"])
    for name in ("minio", "rest", "floe"):
        assert "healthcheck" in s[name], name
    assert s["floe"]["depends_on"]["rest"]["condition"] == "service_healthy"
    env = s["floe"]["environment"]
    assert env["FLOE_OBJECT_STORE"].startswith("s3://floe?endpoint=http://minio:9000")
    assert env["FLOE_STORAGE__WAL"] in ("file", "object")
    # Table Topics go to the REST catalog, their files into the bucket its warehouse names
    # (test_external_catalog.py runs this wiring for real, on moto S3 and a second Floe's catalog).
    assert env["FLOE_TABLE_CATALOG_URI"] == "http://rest:8181"
    bucket = s["rest"]["environment"]["CATALOG_WAREHOUSE"].removeprefix("s3://").strip("/")
    assert env["FLOE_TABLE_WAREHOUSE"].startswith(f"s3://{bucket}?endpoint=http://minio:9000")
    assert f"local/{bucket}" in s["mc"]["entrypoint"][-1], "mc creates the warehouse bucket"
    # Every FLOE_ variable names a real setting (the broker ignores others, so a typo would hide).
    with open(os.path.join(ROOT, "broker", "src", "settings.rs")) as f:
        settings = f.read()
    for k in [k for k in env if k.startswith("FLOE_")] + ["FLOE_KAFKA_LISTEN", "FLOE_SCHEMA_REGISTRY_LISTEN", "FLOE_CATALOG_LISTEN", "FLOE_ADMIN_LISTEN"]:
        field = k.removeprefix("FLOE_").lower().split("__")[-1]
        assert f"pub {field}:" in settings, k


def test_compose_listeners_send_containers_and_the_host_each_to_their_own_address(tmp_path):
    """Runs Floe with the compose file's listener settings (bound on loopback ports instead of 0.0.0.0)."""
    import re

    from confluent_kafka.admin import AdminClient

    from conftest import Floe, floe_binary

    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        floe = yaml.safe_load(f)["services"]["floe"]
    env = floe["environment"]
    assert "FLOE_ADVERTISED_LISTENER" not in env, "one advertised address cannot serve both containers and the host"
    names = [e.split("://")[0] for e in env["FLOE_LISTENERS"].split(",")]
    advertised = dict(e.split("://") for e in env["FLOE_ADVERTISED_LISTENERS"].split(","))
    assert advertised == {"INTERNAL": "floe:29092", "EXTERNAL": "localhost:9092"}
    assert "9092:9092" in floe["ports"], "the host's listener is published"
    run_env = {k: v for k, v in env.items() if k.startswith("FLOE_LISTENER") or k == "FLOE_ADVERTISED_LISTENERS"}
    run_env["FLOE_LISTENERS"] = ",".join(f"{n}://127.0.0.1:0" for n in names)
    node = Floe(floe_binary(), tmp_path / "floe", env=run_env).start()
    try:
        with open(node.log_path) as f:
            line = re.findall(r"listeners=(\S+)", f.read())[-1]
        ports = {n: a.rsplit(":", 1)[1] for n, a in (e.split("://") for e in line.split(","))}
        for name in names:
            md = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports[name]}"}).list_topics(timeout=10)
            assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [advertised[name]], name
    finally:
        node.stop()
