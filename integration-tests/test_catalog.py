"""The built-in Iceberg REST catalog with pyiceberg: namespaces, tables, appends read back,
schema evolution, a stale commit refused with 409, and everything after a restart."""

import signal

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NamespaceNotEmptyError, NoSuchTableError
from pyiceberg.types import StringType


def catalog(floe):
    return RestCatalog("floe", uri=floe.catalog_url)


def rows(n, start=0):
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()), "name": pa.array([f"n{i}" for i in range(start, start + n)])})


def test_pyiceberg_round_trip_evolution_conflict_and_restart(fresh_floe, caplog):
    cat = catalog(fresh_floe)
    cat.create_namespace("db", {"owner": "floe"})
    cat.create_namespace(("db", "nested"))
    with pytest.raises(NamespaceAlreadyExistsError):
        cat.create_namespace("db")
    assert ("db",) in cat.list_namespaces()
    assert ("db", "nested") in cat.list_namespaces("db")
    assert cat.load_namespace_properties("db")["owner"] == "floe"
    t = cat.create_table("db.events", schema=rows(1).schema)
    t.append(rows(100))
    t.append(rows(50, start=100))
    back = cat.load_table("db.events").scan().to_arrow().sort_by("id")
    assert back.num_rows == 150 and back.column("id").to_pylist() == list(range(150))
    with t.update_schema() as u:
        u.add_column("extra", StringType())
    assert "extra" in cat.load_table("db.events").schema().column_names
    # Two writers from the same snapshot: the second commit is stale, gets 409, and pyiceberg
    # re-reads the table and retries; nothing is overwritten.
    a = cat.load_table("db.events")
    b = cat.load_table("db.events")
    a.append(rows(1, start=1000).append_column("extra", pa.array(["x"])))
    with caplog.at_level("WARNING", logger="pyiceberg"):
        b.append(rows(1, start=2000).append_column("extra", pa.array(["y"])))
    assert any("concurrent update" in r.getMessage() for r in caplog.records), "the stale commit was refused"
    ids = cat.load_table("db.events").scan().to_arrow().column("id").to_pylist()
    assert len(ids) == 152 and 1000 in ids and 2000 in ids
    with pytest.raises(NamespaceNotEmptyError):
        cat.drop_namespace("db")
    snapshots = len(cat.load_table("db.events").snapshots())
    fresh_floe.restart(signal.SIGKILL)
    cat = catalog(fresh_floe)
    t = cat.load_table("db.events")
    assert len(t.snapshots()) == snapshots
    assert t.scan().to_arrow().num_rows == 152
    cat.rename_table("db.events", "db.renamed")
    with pytest.raises(NoSuchTableError):
        cat.load_table("db.events")
    cat.drop_table("db.renamed")
    assert cat.list_tables("db") == []


def test_the_catalog_token_is_required_when_set(tmp_path):
    from conftest import Floe, floe_binary
    from pyiceberg.exceptions import UnauthorizedError

    f = Floe(floe_binary(), tmp_path / "secured", ["--catalog-token", "s3cret"]).start()
    try:
        with pytest.raises(UnauthorizedError):
            RestCatalog("floe", uri=f.catalog_url).list_namespaces()
        cat = RestCatalog("floe", uri=f.catalog_url, token="s3cret")
        cat.create_namespace("ok")
        assert ("ok",) in cat.list_namespaces()
    finally:
        f.stop()


def oauth_floe(tmp_path, mechanism, **env):
    """A node with catalog_oauth and the user spark (password spark-secret)."""
    from conftest import Floe, floe_binary
    from test_security import create_user

    data = tmp_path / "oauth"
    data.mkdir()
    create_user(data, "spark", "spark-secret", mechanism)
    return Floe(floe_binary(), data, env={"FLOE_CATALOG_OAUTH": "true", **env}).start()


def test_pyiceberg_gets_a_token_with_client_credentials(tmp_path):
    from pyiceberg.exceptions import OAuthError, UnauthorizedError

    f = oauth_floe(tmp_path, "SCRAM-SHA-256", FLOE_CATALOG_TOKEN="static-t0ken")
    try:
        with pytest.raises(UnauthorizedError):
            RestCatalog("floe", uri=f.catalog_url).list_namespaces()
        with pytest.raises((OAuthError, UnauthorizedError)):
            RestCatalog("floe", uri=f.catalog_url, credential="spark:wrong").list_namespaces()
        cat = RestCatalog("floe", uri=f.catalog_url, credential="spark:spark-secret")
        cat.create_namespace("granted")
        assert ("granted",) in cat.list_namespaces()
        assert ("granted",) in RestCatalog("floe", uri=f.catalog_url, token="static-t0ken").list_namespaces(), "the static token still works"
        with pytest.raises(UnauthorizedError):
            RestCatalog("floe", uri=f.catalog_url, token="floe-made-up").list_namespaces()
    finally:
        f.stop()


def test_spark_logs_in_to_the_catalog_with_oauth2_client_credentials(tmp_path):
    from readers import spark_add_catalog, spark_session

    f = oauth_floe(tmp_path, "SCRAM-SHA-512")
    spark = spark_session()
    try:
        spark_add_catalog(spark, "granted", f.catalog_url, credential="spark:spark-secret")
        spark.sql("CREATE NAMESPACE granted.from_spark")
        spark.sql("CREATE TABLE granted.from_spark.t (id BIGINT) USING iceberg")
        spark.sql("INSERT INTO granted.from_spark.t VALUES (1), (2)")
        assert sorted(r[0] for r in spark.sql("SELECT id FROM granted.from_spark.t").collect()) == [1, 2]
        spark_add_catalog(spark, "refused", f.catalog_url, credential="spark:wrong")
        with pytest.raises(Exception, match="(?i)unauthorized|invalid_client|not authorized|401"):
            spark.sql("SHOW NAMESPACES IN refused").collect()
    finally:
        spark.stop()
        f.stop()
