"""Cluster mode, first part: nodes register in a real etcd (Debian's etcd-server 3.4) under leased
keys and elect a controller; `floe broker list` reads them; a taken node id is refused; a killed
controller leaves within its session timeout and another takes over, a stopped node leaves at
once, and a paused one registers again (a new epoch)."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import Floe, floe_binary


def node(tmp_path, etcd, node_id, name):
    env = {"FLOE_ETCD_ENDPOINTS": etcd, "FLOE_CLUSTER_NAME": "test", "FLOE_NODE_ID": str(node_id), "FLOE_CLUSTER_SESSION_TIMEOUT_MS": "2000"}
    return Floe(floe_binary(), tmp_path / name, env=env)


def brokers(etcd):
    out = subprocess.run([floe_binary(), "broker", "list", "--json", "--etcd-endpoints", etcd, "--cluster-name", "test"],
                         capture_output=True, text=True, timeout=30, check=True)
    return {b["node_id"]: b for b in json.loads(out.stdout)}


def wait_brokers(etcd, done, timeout=15):
    deadline = time.time() + timeout
    while True:
        got = brokers(etcd)
        if done(got) or time.time() > deadline:
            return got
        time.sleep(0.1)


def ready(f):
    try:
        return urllib.request.urlopen(f.admin_url + "/health/ready", timeout=5).status == 200
    except urllib.error.HTTPError:
        return False


def test_nodes_register_and_a_taken_id_is_refused(tmp_path, etcd):
    a, b = node(tmp_path, etcd, 1, "a").start(), node(tmp_path, etcd, 2, "b").start()
    try:
        got = brokers(etcd)
        assert sorted(got) == [1, 2]
        assert got[1]["listeners"] == [f"PLAINTEXT://{a.bootstrap}"] and got[2]["listeners"] == [f"PLAINTEXT://{b.bootstrap}"]
        assert got[2]["epoch"] > got[1]["epoch"] > 0, "each registration is a new etcd revision"
        assert got[1]["controller_epoch"] and got[2]["controller_epoch"] is None, "the first node is the controller, and only it"
        assert ready(a) and ready(b)
        table = subprocess.run([floe_binary(), "broker", "list", "--etcd-endpoints", etcd, "--cluster-name", "test"],
                               capture_output=True, text=True, timeout=30, check=True).stdout
        assert "NODE" in table and a.bootstrap in table and b.bootstrap in table
        with pytest.raises(RuntimeError, match="node id 1 is taken by a live node"):
            node(tmp_path, etcd, 1, "c").start()
        assert brokers(etcd)[1]["epoch"] == got[1]["epoch"], "the refused node changed nothing"
        # A topic is written in one etcd transaction: past etcd's --max-txn-ops (128 here) the
        # client is told why, and nothing is half-created.
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        with pytest.raises(Exception, match="max-txn-ops"):
            admin.create_topics([NewTopic("huge", 200, 1)])["huge"].result(30)
        assert "huge" not in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics
    finally:
        a.stop()
        b.stop()
    assert brokers(etcd) == {}, "a node that stops leaves at once (its lease is revoked)"


def test_a_killed_controller_is_replaced_and_a_paused_node_registers_again(tmp_path, etcd):
    a, b = node(tmp_path, etcd, 1, "a").start(), node(tmp_path, etcd, 2, "b").start()
    try:
        first = brokers(etcd)
        assert first[1]["controller_epoch"]
        killed_at = time.time()
        a.stop(signal.SIGKILL)
        after = wait_brokers(etcd, lambda g: 1 not in g and g.get(2, {}).get("controller_epoch"))
        took_s = time.time() - killed_at
        assert sorted(after) == [2], after
        assert after[2]["controller_epoch"] > first[1]["controller_epoch"], "a new controller, a new controller epoch"
        print(f"the killed controller's key went and node 2 took over {took_s:.1f} s after SIGKILL (session timeout 2 s)")
        assert took_s < 10

        # Paused past its session timeout, node 2 loses its key; resumed, it registers again.
        b.proc.send_signal(signal.SIGSTOP)
        try:
            assert wait_brokers(etcd, lambda g: 2 not in g) == {}
        finally:
            b.proc.send_signal(signal.SIGCONT)
        again = wait_brokers(etcd, lambda g: g.get(2, {}).get("controller_epoch"))
        assert again[2]["epoch"] > after[2]["epoch"], "a new registration is a new broker epoch"
        assert again[2]["controller_epoch"] > after[2]["controller_epoch"]
        deadline = time.time() + 10
        while not ready(b) and time.time() < deadline:
            time.sleep(0.1)
        assert ready(b)
    finally:
        a.stop()
        b.stop()
