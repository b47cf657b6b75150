"""The docker-compose wiring, run for real without Docker: Floe with a loopback S3 server (moto) as
its object store, committing its Table Topics to an external Iceberg REST catalog (a second Floe's
built-in catalog stands in for `apache/iceberg-rest-fixture`) whose warehouse is another bucket."""
import json
import signal

import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from conftest import Floe, floe_binary
from test_s3 import aws_env, make_bucket, s3  # noqa: F401  (fixtures)
from test_table_topic import create_table_topic, produce


def test_table_topics_commit_to_an_external_rest_catalog_on_s3(s3, tmp_path):  # noqa: F811
    region = "region=us-east-1"
    warehouse_bucket = make_bucket(s3)
    catalog = Floe(floe_binary(), tmp_path / "catalog", ["--object-store", f"s3://{warehouse_bucket}?endpoint={s3}&{region}"]).start()
    broker_bucket = make_bucket(s3)
    floe = Floe(floe_binary(), tmp_path / "floe", [
        "--object-store", f"s3://{broker_bucket}?endpoint={s3}&{region}",
        "--table-catalog-uri", catalog.catalog_url,
        "--table-warehouse", f"s3://{warehouse_bucket}?endpoint={s3}&{region}",
    ]).start()
    try:
        create_table_topic(floe, "accounts", partitions=2, convert_value_type="json", transform_value_type="flatten",
                           upsert_enable="true", id_columns="[id]")
        key = lambda i: json.dumps({"id": i}).encode()
        produce(floe, "accounts", [(key(i), json.dumps({"id": i, "balance": i}).encode()) for i in range(100)])
        ext = RestCatalog("ext", uri=catalog.catalog_url)

        def rows():
            try:
                return sorted((r["id"], r["balance"]) for r in ext.load_table(("default", "accounts")).scan().to_arrow().to_pylist())
            except Exception:
                return []

        wait_for(lambda: rows() == [(i, i) for i in range(100)], lambda: f"{rows()[:5]}…\n{floe.log_tail()}")
        # The table lives in the external catalog's warehouse bucket; Floe's own catalog has no such table.
        table = ext.load_table(("default", "accounts"))
        assert table.metadata.location.startswith(f"s3://{warehouse_bucket}/"), table.metadata.location
        with pytest.raises((NoSuchTableError, NoSuchNamespaceError)):
            RestCatalog("own", uri=floe.catalog_url).load_table(("default", "accounts"))

        # A kill -9, then updates: offsets come back from the external catalog, nothing twice.
        floe.restart(signal.SIGKILL)
        produce(floe, "accounts", [(key(i), json.dumps({"id": i, "balance": -i}).encode()) for i in range(0, 100, 10)])
        expected = sorted((i, -i if i % 10 == 0 else i) for i in range(100))
        wait_for(lambda: rows() == expected, lambda: f"{rows()[:12]}…\n{floe.log_tail()}")
        offsets = json.loads(ext.load_table(("default", "accounts")).current_snapshot().summary.additional_properties["floe.offsets"])
        assert sum(offsets.values()) == 110
    finally:
        floe.stop(signal.SIGKILL)
        catalog.stop()


def wait_for(cond, why, timeout=40):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(why())
