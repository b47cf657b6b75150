"""Reading a Floe table with the engines people use — pyiceberg, DuckDB (iceberg extension loaded
offline from its pip package) and Spark (the Iceberg runtime jar from snowpark-connect-deps-iceberg) —
each through Floe's REST catalog, as a user would."""
import glob
import os
import time

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError


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


def duckdb_connection():
    """A DuckDB connection with the httpfs, avro and iceberg extensions loaded from their pip packages (no download)."""
    import duckdb
    import duckdb_extension_avro
    import duckdb_extension_httpfs
    import duckdb_extension_iceberg

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    # httpfs speaks HTTP to the REST catalog; avro reads manifests; iceberg needs both loaded first.
    for pkg, name in ((duckdb_extension_httpfs, "httpfs"), (duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        (path,) = glob.glob(os.path.join(os.path.dirname(pkg.__file__), "extensions", "*", f"{name}.duckdb_extension"))
        con.execute(f"LOAD '{path}'")
    return con


def duckdb_rows(floe, table, columns, ns="default"):
    """`columns` of ns.table read by DuckDB, through the REST catalog, as tuples."""
    con = duckdb_connection()
    con.execute(f"ATTACH '' AS floe (TYPE iceberg, ENDPOINT '{floe.catalog_url}', AUTHORIZATION_TYPE 'none')")
    cols = ", ".join(f'"{c}"' for c in columns)
    try:
        return con.execute(f'SELECT {cols} FROM floe."{ns}"."{table}"').fetchall()
    finally:
        con.close()


def spark_session():
    """A local Spark session with the Iceberg runtime (catalogs are added per Floe node by `spark_rows`)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import snowpark_connect_deps_iceberg
    from pyspark.sql import SparkSession

    (jar,) = glob.glob(os.path.join(os.path.dirname(snowpark_connect_deps_iceberg.__file__), "jars", "iceberg-spark-runtime-3.5_2.12-*.jar"))
    return (
        SparkSession.builder.master("local[1]")
        .appName("floe-tests")
        .config("spark.jars", jar)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .getOrCreate()
    )


def spark_rows(spark, floe, table, columns, ns="default"):
    """`columns` of ns.table read by Spark through `floe`'s REST catalog, as tuples."""
    name = f"floe{floe.catalog_port}"
    spark.conf.set(f"spark.sql.catalog.{name}", "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"spark.sql.catalog.{name}.type", "rest")
    spark.conf.set(f"spark.sql.catalog.{name}.uri", floe.catalog_url)
    spark.conf.set(f"spark.sql.catalog.{name}.cache-enabled", "false")
    cols = ", ".join(f"`{c}`" for c in columns)
    return [tuple(r) for r in spark.sql(f"SELECT {cols} FROM {name}.`{ns}`.`{table}`").collect()]
