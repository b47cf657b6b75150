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
