"""Cluster mode, broker loss. With the object WAL a broker killed under load (SIGKILL) loses
nothing it acknowledged: the controller opens its storage, fences it, and hands its partitions
to the live brokers; the producers carry on by themselves and no record is written twice. A
broker paused (SIGSTOP) until its partitions were taken acknowledges nothing once resumed and
leaves the cluster. With a file WAL a lost broker's partitions wait for it, unless an operator
accepts losing what it had not uploaded."""

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request

from clusterkit import Load, assignments, check_read_back, cli, start_cluster, wait_for
from conftest import floe_binary

OBJECT_WAL = {"FLOE_STORAGE__WAL": "object", "FLOE_STORAGE__WAL_BATCH_INTERVAL_MS": "20"}


def live(etcd):
    return {b["node_id"] for b in json.loads(cli(etcd, "broker", "list", "--json"))}


def owned_by(etcd, node):
    return sorted(k[1] for k, a in assignments(etcd).items() if a["owner"] == node)


def test_a_killed_broker_loses_nothing_acknowledged_with_the_object_wal(tmp_path, etcd):
    nodes = start_cluster(tmp_path, etcd, (1, 2, 3), **OBJECT_WAL)
    try:
        lost = owned_by(etcd, 2)
        assert lost, "broker 2 owns partitions"
        with Load(",".join(n.bootstrap for n in nodes), kafka_python=False) as load:
            time.sleep(1.5)
            before = len(load.acked)
            killed_at = time.time()
            nodes[1].stop(signal.SIGKILL)
            taken = wait_for(lambda: owned_by(etcd, 2) == [], timeout=30)
            reassigned_s = time.time() - killed_at
            assert taken, "the controller reassigned the lost broker's partitions"

            def acked_after_kill():
                with load.lock:
                    return {p for p, _, _ in load.acked[before:] if p in lost} == set(lost)
            served = wait_for(acked_after_kill, timeout=60)
            served_s = time.time() - killed_at
            time.sleep(0.5)
        assert served, "every partition of the lost broker takes produce again"
        assert load.errors == [], load.errors[:5]
        epochs = {k[1]: a["leader_epoch"] for k, a in assignments(etcd).items()}
        assert all(epochs[p] == 1 for p in lost), "a reassignment bumps the leader epoch"
        check_read_back(nodes[0].bootstrap, load.acked)
        print(f"SIGKILL of broker 2 (object WAL, session timeout 2 s): its {len(lost)} partitions reassigned after "
              f"{reassigned_s:.1f} s and producing again after {served_s:.1f} s; {len(load.acked)} acknowledged records all read back once")
    finally:
        for n in nodes:
            n.stop()


def test_a_paused_broker_resumed_after_losing_its_partitions_acknowledges_nothing(tmp_path, etcd):
    nodes = start_cluster(tmp_path, etcd, (1, 2), **OBJECT_WAL)
    try:
        lost = owned_by(etcd, 2)
        with Load(nodes[0].bootstrap, kafka_python=False) as load:
            time.sleep(1)
        nodes[1].proc.send_signal(signal.SIGSTOP)
        try:
            assert wait_for(lambda: owned_by(etcd, 2) == [], timeout=30), "broker 1 took the paused broker's partitions"
        finally:
            nodes[1].proc.send_signal(signal.SIGCONT)
        # Straight to the resumed broker, for a partition it led: refused, and never stored.
        out = subprocess.run([floe_binary(), "produce", "moves", "--partition", str(lost[0]), "--bootstrap", nodes[1].bootstrap, "--timeout-ms", "5000"],
                             input='"zombie"\n', capture_output=True, text=True, timeout=60)
        assert out.returncode != 0, f"the resumed broker acknowledged a produce: {out.stdout}"

        def left():
            try:
                urllib.request.urlopen(nodes[1].admin_url + "/health/ready", timeout=5)
                return False
            except urllib.error.HTTPError as e:
                return e.code == 503
        assert wait_for(left, timeout=30), "the fenced broker reports not ready"
        got = check_read_back(nodes[0].bootstrap, load.acked)
        assert "zombie" not in {v for _, _, v in got}
    finally:
        for n in nodes:
            n.stop()


def test_with_a_file_wal_a_lost_brokers_partitions_wait_unless_the_loss_is_accepted(tmp_path, etcd):
    nodes = start_cluster(tmp_path, etcd, (1, 2), FLOE_STORAGE__UPLOAD_INTERVAL_MS="200")
    try:
        lost = owned_by(etcd, 2)
        with Load(nodes[0].bootstrap, kafka_python=False) as load:
            time.sleep(1)
        time.sleep(1)  # everything acknowledged is uploaded by now
        nodes[1].stop(signal.SIGKILL)
        assert wait_for(lambda: 2 not in live(etcd), timeout=15)
        time.sleep(2)
        assert owned_by(etcd, 2) == lost, "the lost broker's partitions wait for it"
        refused = cli(etcd, "broker", "recover", "2", check=False)
        assert refused.returncode != 0 and "--accept-loss" in refused.stderr
        # It comes back: its own disk's WAL has whatever was not uploaded.
        nodes[1].start()
        check_read_back(nodes[0].bootstrap, load.acked)
        nodes[1].stop(signal.SIGKILL)
        assert wait_for(lambda: 2 not in live(etcd), timeout=15)
        cli(etcd, "broker", "recover", "2", "--accept-loss")
        assert wait_for(lambda: owned_by(etcd, 2) == [], timeout=30), "accepted: the controller took the partitions over"
        check_read_back(nodes[0].bootstrap, load.acked)
    finally:
        for n in nodes:
            n.stop()
