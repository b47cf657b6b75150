"""kafka-python's own integration suite, run against Floe as an external broker (KAFKA_URI).

The suite comes from kafka-python's sdist on PyPI (cached under ~/.cache/floe). The sdist lacks
`test/service.py`; `kafka_python_suite/service.py` stands in for it (external brokers only).
Tests of APIs Floe does not implement are listed below; any other failure fails this test."""

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import pytest

from conftest import Floe, floe_binary

VERSION = "3.0.12"
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.expanduser("~/.cache/floe/sdist")

# APIs outside Floe's scope (ACLs, replica placement, KRaft quorum, TLS), and one
# expectation of kafka-python's own pre-4.0 broker fixture (advertised.listeners as a default).
NOT_SUPPORTED = {
    "test_create_describe_delete_acls",
    "test_elect_leaders",
    "test_describe_log_dirs",
    "test_alter_replica_log_dirs",
    "test_alter_partition_reassignments",
    "test_list_partition_reassignments",
    "test_describe_metadata_quorum",
    "test_describe_topic_partitions",
    "test_describe_topic_partitions_pagination",
    "test_ssl_handshake",
    "test_legacy_kafka_client_ssl",
    "test_describe_configs_broker_resource_returns_configs",
}


def sdist():
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"kafka_python-{VERSION}.tar.gz")
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "-d", CACHE, f"kafka-python=={VERSION}"], check=True, timeout=300)
    return path


@pytest.fixture
def floe4(tmp_path):
    """A node that creates topics with 4 partitions, as kafka-python's own broker fixture does
    (its transactional test commits an offset for partition 1 of an auto-created topic)."""
    f = Floe(floe_binary(), tmp_path / "floe", env={"FLOE_NUM_PARTITIONS": "4"}).start()
    yield f
    f.stop()


def test_kafka_python_integration_suite(floe4, tmp_path):
    floe = floe4
    try:
        archive = sdist()
    except subprocess.CalledProcessError:
        pytest.skip("kafka-python's sdist could not be downloaded")
    with tarfile.open(archive) as t:
        t.extractall(tmp_path, filter="data")
    root = tmp_path / f"kafka_python-{VERSION}"
    (root / "test" / "__init__.py").touch()
    shutil.copy(os.path.join(HERE, "kafka_python_suite", "service.py"), root / "test" / "service.py")
    (tmp_path / "kafka-root").mkdir()
    env = dict(os.environ, KAFKA_VERSION="3.8.0", KAFKA_URI=f"PLAINTEXT://{floe.bootstrap}",
               KAFKA_ROOT=str(tmp_path / "kafka-root"), PYTHONPATH=str(root))
    def run(args, report):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "log_level=WARNING",
                            f"--junitxml={report}", *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
        passed, failed = [], []
        for c in ET.parse(report).getroot().iter("testcase"):
            name = c.get("name").split("[")[0]
            node = f"{c.get('classname').replace('.', '/')}.py::{c.get('name')}"
            if c.find("failure") is not None or c.find("error") is not None:
                failed.append((name, node))
            elif c.find("skipped") is None:
                passed.append(name)
        return r, passed, failed

    r, passed, failed = run(["test/integration"], tmp_path / "report.xml")
    unexpected = [(n, node) for n, node in failed if n not in NOT_SUPPORTED]
    if unexpected:
        # One rerun of an unexpected failure, by itself: a test that fails again fails this test; one that
        # passes is reported as flaky in the output (test_kafka_consumer_unsupported_encoding has been seen
        # to get nothing in its single 2-second poll, rarely; its cause is not found yet).
        print("kafka-python tests rerun after failing once:", [n for n, _ in unexpected])
        r2, again_passed, again_failed = run([node for _, node in unexpected], tmp_path / "rerun.xml")
        passed += again_passed
        unexpected = [n for n, _ in again_failed]
        r = r2 if unexpected else r
    assert not unexpected, f"kafka-python tests failing against Floe: {unexpected}\n{r.stdout[-4000:]}"
    assert len(passed) >= 42, f"only {len(passed)} passed\n{r.stdout[-4000:]}"
