"""Cluster mode, etcd restarted under load: with the object WAL (whose fence, not the lease,
keeps a node that was taken for lost from acknowledging) the brokers keep serving the partitions
they own while etcd is away — producers are acknowledged past the lease's TTL — and the cluster's
changes wait for etcd: once it is back every broker is still registered and a move completes.
Nothing acknowledged is lost or written twice."""

import json
import time

from clusterkit import Load, assignments, check_read_back, cli, start_cluster, wait_for

OBJECT_WAL = {"FLOE_STORAGE__WAL": "object", "FLOE_STORAGE__WAL_BATCH_INTERVAL_MS": "20"}


def test_brokers_keep_serving_while_etcd_restarts_and_changes_wait_for_it(tmp_path, etcd_server):
    etcd = etcd_server.url
    nodes = start_cluster(tmp_path, etcd, (1, 2, 3), **OBJECT_WAL)
    try:
        with Load(",".join(n.bootstrap for n in nodes), kafka_python=False) as load:
            time.sleep(1.5)
            etcd_server.stop()
            time.sleep(3)  # past the 2 s session timeout: no lease renewal has been answered since
            with load.lock:
                before = len(load.acked)
            time.sleep(2)
            with load.lock:
                during = len(load.acked) - before
            etcd_server.start()
            # Changes go through again: every broker is registered and a move completes.
            live = wait_for(lambda: {b["node_id"] for b in json.loads(cli(etcd, "broker", "list", "--json"))} == {1, 2, 3}, timeout=30)
            owner = assignments(etcd)[("moves", 0)]["owner"]
            to = 1 if owner != 1 else 2
            cli(etcd, "partition", "move", "moves:0", "--to", str(to), "--wait")
            time.sleep(1)
        assert during > 0, "records were acknowledged 3–5 s into etcd's absence"
        assert live, "every broker is still registered once etcd is back"
        assert assignments(etcd)[("moves", 0)]["owner"] == to
        assert load.errors == [], load.errors[:5]
        check_read_back(nodes[0].bootstrap, load.acked)
        print(f"etcd away 5 s: {during} records acknowledged 3–5 s into it; {len(load.acked)} acknowledged in all, all read back once")
    finally:
        for n in nodes:
            n.stop()
