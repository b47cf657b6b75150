"""Opening Floe's tables from Python engines, offline: DuckDB with the iceberg/avro/httpfs extensions
loaded from their pip packages, and Spark with the Iceberg runtime jar from
snowpark-connect-deps-iceberg; both through Floe's Iceberg REST catalog."""
import glob
import os


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


def duckdb_attach(con, catalog_url, alias="floe"):
    """Attaches Floe's REST catalog to `con` as `alias` (tables are then alias."namespace"."table")."""
    con.execute(f"ATTACH '' AS {alias} (TYPE iceberg, ENDPOINT '{catalog_url}', AUTHORIZATION_TYPE 'none')")


def spark_session():
    """A local Spark session with the Iceberg runtime; add Floe's catalog with `spark_add_catalog`."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import snowpark_connect_deps_iceberg
    from pyspark.sql import SparkSession

    (jar,) = glob.glob(os.path.join(os.path.dirname(snowpark_connect_deps_iceberg.__file__), "jars", "iceberg-spark-runtime-3.5_2.12-*.jar"))
    return (
        SparkSession.builder.master("local[1]")
        .appName("floe")
        .config("spark.jars", jar)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .getOrCreate()
    )


def spark_add_catalog(spark, name, catalog_url, credential=None):
    """Registers Floe's REST catalog in `spark` as `name` (tables are then name.`namespace`.`table`);
    `credential` ("user:password", with `catalog_oauth = true`) logs in through the catalog's OAuth2 flow."""
    spark.conf.set(f"spark.sql.catalog.{name}", "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"spark.sql.catalog.{name}.type", "rest")
    spark.conf.set(f"spark.sql.catalog.{name}.uri", catalog_url)
    if credential:
        spark.conf.set(f"spark.sql.catalog.{name}.credential", credential)
        spark.conf.set(f"spark.sql.catalog.{name}.oauth2-server-uri", f"{catalog_url}/v1/oauth/tokens")
    spark.conf.set(f"spark.sql.catalog.{name}.cache-enabled", "false")
