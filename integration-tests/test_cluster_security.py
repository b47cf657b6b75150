"""Cluster mode, users and ACLs: they live in etcd, so the first admin written there by the CLI
logs in at every broker, a SCRAM user created through one broker logs in at another, an ACL
created through one is enforced by the other, and a user deleted through the second is refused
by the first. Brokers reach each other on the SASL listener with
their own credentials (`inter_broker_client`): a transaction spanning both brokers commits while
anonymous clients are denied ClusterAction."""

import re
import subprocess
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

from clusterkit import wait_for
from conftest import Floe, floe_binary

PASSWORD = "alice-cluster-pw"


def start(tmp_path, etcd, node_id):
    cfg = tmp_path / f"node{node_id}.toml"
    cfg.write_text('listeners = ["PLAINTEXT://127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0"]\n'
                   'authorizer = true\nallow_everyone_if_no_acl_found = true\nsuper_users = ["User:admin"]\n'
                   'inter_broker_listener_name = "SASL_PLAINTEXT"\n'
                   '[inter_broker_client]\n"security.protocol" = "SASL_PLAINTEXT"\n"sasl.mechanism" = "SCRAM-SHA-512"\n'
                   '"sasl.username" = "admin"\n"sasl.password" = "admin-pw"\n')
    env = {"FLOE_ETCD_ENDPOINTS": etcd, "FLOE_CLUSTER_NAME": "sec", "FLOE_NODE_ID": str(node_id),
           "FLOE_OBJECT_STORE": f"file://{tmp_path / 'bucket'}", "FLOE_TRANSACTION_STATE_PARTITIONS": "4"}
    node = Floe(floe_binary(), tmp_path / f"node{node_id}", extra=["--config", str(cfg)], env=env).start()
    with open(node.log_path) as f:
        line = re.findall(r"listeners=(\S+)", f.read())[-1]
    node.sasl = next(addr for name, addr in (e.split("://") for e in line.split(",")) if name == "SASL_PLAINTEXT")
    return node


def alice(node):
    return {"bootstrap.servers": node.sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "alice", "sasl.password": PASSWORD}


def logs_in(conf):
    try:
        AdminClient({**conf, "socket.timeout.ms": 3000}).list_topics(timeout=5)
        return True
    except KafkaException:
        return False


def produce_refused(conf, topic):
    p = Producer({**conf, "message.timeout.ms": 5000})
    errors = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    return bool(errors) and errors[0] is not None and errors[0].name() == "TOPIC_AUTHORIZATION_FAILED"


def test_users_and_acls_made_through_one_broker_hold_at_the_other(tmp_path, etcd):
    nodes = [start(tmp_path, etcd, i) for i in (1, 2)]
    try:
        # The first admin, written into etcd directly (before anyone could log in).
        subprocess.run([floe_binary(), "user", "create", "admin", "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--etcd-endpoints", etcd,
                        "--cluster-name", "sec"], input="admin-pw\n", text=True, check=True, capture_output=True, timeout=60)
        admin = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": "admin-pw"}
        assert all(wait_for(lambda n=n: logs_in({**admin, "bootstrap.servers": n.sasl}), timeout=15) for n in nodes), "the admin logs in everywhere"
        one, two = (AdminClient({"bootstrap.servers": n.bootstrap}) for n in nodes)
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
        for f in one.alter_user_scram_credentials([UserScramCredentialUpsertion("alice", info, PASSWORD.encode())]).values():
            f.result(30)
        assert wait_for(lambda: logs_in(alice(nodes[1])), timeout=15), "alice, created through broker 1, logs in at broker 2"

        one.create_topics([NewTopic("secret", 1, 1)])["secret"].result(30)
        # Led by broker 2, which must know the ACL broker 1 stored.
        subprocess.run([floe_binary(), "partition", "move", "secret:0", "--to", "2", "--wait", "--etcd-endpoints", etcd, "--cluster-name", "sec"],
                       check=True, capture_output=True, timeout=60)
        deny = AclBinding(ResourceType.TOPIC, "secret", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE,
                          AclPermissionType.DENY)
        for f in one.create_acls([deny]).values():
            f.result(30)
        assert wait_for(lambda: produce_refused(alice(nodes[1]), "secret"), timeout=30, step=0.5), \
            "an ACL created through broker 1 is enforced by broker 2"

        for f in two.alter_user_scram_credentials([UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)]).values():
            f.result(30)
        assert wait_for(lambda: not logs_in(alice(nodes[0])), timeout=15), "deleted through broker 2, alice is refused by broker 1"

        # Brokers talk to each other on the SASL listener as admin: with ClusterAction denied to
        # anonymous clients, a transaction over partitions of both brokers still gets its markers.
        one.create_topics([NewTopic("pair", 2, 1)])["pair"].result(30)
        for part, to in ((0, 1), (1, 2)):
            subprocess.run([floe_binary(), "partition", "move", f"pair:{part}", "--to", str(to), "--wait", "--etcd-endpoints", etcd,
                            "--cluster-name", "sec"], check=True, capture_output=True, timeout=60)
        anonymous = AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                               AclOperation.CLUSTER_ACTION, AclPermissionType.DENY)
        admin_client = AdminClient({**admin, "bootstrap.servers": nodes[0].sasl})
        for f in admin_client.create_acls([anonymous]).values():
            f.result(30)
        p = Producer({**admin, "bootstrap.servers": ",".join(n.sasl for n in nodes), "transactional.id": "sec-txn"})
        p.init_transactions(30)
        p.begin_transaction()
        for part in (0, 1):
            p.produce("pair", value=f"v{part}".encode(), partition=part)
        p.commit_transaction(30)
        c = Consumer({**admin, "bootstrap.servers": nodes[0].sasl, "group.id": "sec-r", "isolation.level": "read_committed",
                      "auto.offset.reset": "earliest"})
        c.assign([TopicPartition("pair", 0, 0), TopicPartition("pair", 1, 0)])
        got, deadline = [], time.time() + 20
        while len(got) < 2 and time.time() < deadline:
            got.extend(m.value() for m in c.consume(10, 0.5) if not m.error())
        c.close()
        assert sorted(got) == [b"v0", b"v1"], "the transaction committed in both brokers' partitions"
    finally:
        for n in nodes:
            n.stop()
