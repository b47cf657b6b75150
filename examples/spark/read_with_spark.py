"""Reads a Floe Table Topic from Spark through Floe's Iceberg REST catalog (pyspark 3.5.9 with the
Iceberg runtime jar from snowpark-connect-deps-iceberg), and runs a query on it.

    python examples/spark/read_with_spark.py --table orders_avro \
        --sql 'SELECT customer, count(*) AS orders FROM floe.`default`.orders_avro GROUP BY customer'
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from floe_engines import spark_add_catalog, spark_session  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", default="http://127.0.0.1:8181")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--table", required=True)
    ap.add_argument("--sql", help="a query; the catalog is `floe` (default: the table's first 20 rows)")
    a = ap.parse_args()
    spark = spark_session()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        spark_add_catalog(spark, "floe", a.catalog)
        table = f"floe.`{a.namespace}`.`{a.table}`"
        print(f"{table}: {spark.table(table).count()} rows; snapshots:")
        spark.sql(f"SELECT snapshot_id, operation, summary['added-records'] AS added FROM {table}.snapshots ORDER BY committed_at").show(truncate=False)
        spark.sql(a.sql or f"SELECT * FROM {table} LIMIT 20").show(truncate=False)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
