"""Reading a Floe table with the engines people use — pyiceberg, DuckDB (iceberg extension loaded
offline from its pip package) and Spark (the Iceberg runtime jar from snowpark-connect-deps-iceberg) —
each through Floe's REST catalog, as a user would."""
import os
import sys
import time

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
sys.path.insert(0, EXAMPLES)
from floe_engines import duckdb_attach, duckdb_connection, spark_add_catalog, spark_session  # noqa: E402,F401


def pyiceberg_rows(floe, table, ns="default"):
    """Rows of ns.table as dicts, or [] while the table does not exist."""
    try:
        return RestCatalog("floe", uri=floe.catalog_url).load_table((ns, table)).scan().to_arrow().to_pylist()
    except NoSuchTableError:
        return []


def wait_rows(floe, table, done, timeout=40, ns="default"):
    """pyiceberg rows of ns.table, polled until `done(rows)` holds or time runs out."""
    deadline = time.time() + timeout
    rows = pyiceberg_rows(floe, table, ns)
    while not done(rows) and time.time() < deadline:
        time.sleep(0.3)
        rows = pyiceberg_rows(floe, table, ns)
    return rows


def duckdb_rows(floe, table, columns, ns="default"):
    """`columns` of ns.table read by DuckDB, through the REST catalog, as tuples."""
    con = duckdb_connection()
    duckdb_attach(con, floe.catalog_url)
    cols = ", ".join(f'"{c}"' for c in columns)
    try:
        return con.execute(f'SELECT {cols} FROM floe."{ns}"."{table}"').fetchall()
    finally:
        con.close()


def spark_rows(spark, floe, table, columns, ns="default"):
    """`columns` of ns.table read by Spark through `floe`'s REST catalog, as tuples."""
    name = f"floe{floe.catalog_port}"
    spark_add_catalog(spark, name, floe.catalog_url)
    cols = ", ".join(f"`{c}`" for c in columns)
    return [tuple(r) for r in spark.sql(f"SELECT {cols} FROM {name}.`{ns}`.`{table}`").collect()]
