"""ACLs with real clients: each API with and without its permission, prefixed patterns, deny over
allow, listings that show only what may be described, the ACL admin API, the CLI, and restarts."""

import re
import subprocess
import uuid

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, ConfigResource,
                                   NewTopic, ResourcePatternType, ResourceType)

from conftest import Floe, floe_binary
from helpers import consume_all
from test_security import create_user, metric

PASSWORDS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}


class AclNode:
    """A node with the authorizer on and the users of PASSWORDS; `config` adds settings (TOML)."""

    def __init__(self, tmp, listeners=("SASL_PLAINTEXT", "PLAINTEXT"), config=""):
        data = tmp / "floe"
        data.mkdir()
        for user, pw in PASSWORDS.items():
            create_user(data, user, pw, "SCRAM-SHA-256")
        path = tmp / "floe.toml"
        names = ", ".join(f'"{n}://127.0.0.1:0"' for n in listeners)
        path.write_text(f'listeners = [{names}]\nauthorizer = true\nsuper_users = ["User:admin"]\n{config}')
        self.floe = Floe(floe_binary(), data, extra=["--config", str(path)]).start()
        self.admins = {}
        self.read_ports()
        self.props = tmp / "admin.properties"
        self.props.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=admin\nsasl.password={PASSWORDS['admin']}\n")

    def read_ports(self):
        with open(self.floe.log_path) as f:
            line = re.findall(r"listeners=(\S+)", f.read())[-1]
        self.ports = {n: int(a.rsplit(":", 1)[1]) for n, a in (e.split("://") for e in line.split(","))}

    def conf(self, user):
        return {"bootstrap.servers": f"127.0.0.1:{self.ports['SASL_PLAINTEXT']}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": PASSWORDS[user]}

    def admin(self, user="admin"):
        """One AdminClient per user, kept (a client collected before its futures resolve cancels them)."""
        if (user, self.ports["SASL_PLAINTEXT"]) not in self.admins:
            self.admins[(user, self.ports["SASL_PLAINTEXT"])] = AdminClient(self.conf(user))
        return self.admins[(user, self.ports["SASL_PLAINTEXT"])]

    def acl(self, *args):
        cli = [floe_binary(), "acl", "--bootstrap", f"127.0.0.1:{self.ports['SASL_PLAINTEXT']}", "--command-config", str(self.props)]
        return subprocess.run(cli + list(args), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = AclNode(tmp_path_factory.mktemp("acls"))
    yield n
    n.floe.stop()


def new_topic(node, config=None):
    name = f"acl-{uuid.uuid4().hex[:8]}"
    node.admin().create_topics([NewTopic(name, 1, 1, config=config or {})])[name].result(timeout=30)
    return name


def produce_error(conf, topic, value=b"v"):
    """The delivery error of one record (None when it was written)."""
    out = []
    p = Producer({**conf, "message.timeout.ms": 5000, "enable.idempotence": False})
    p.produce(topic, value=value, on_delivery=lambda e, m: out.append(e))
    p.flush(15)
    return out[0] if out else "not delivered"


def code_name(err):
    return err.name() if hasattr(err, "name") else str(err)


def test_nothing_is_allowed_without_an_acl_but_super_users_do_everything(node):
    topic = new_topic(node)
    assert code_name(produce_error(node.conf("alice"), topic)) == "TOPIC_AUTHORIZATION_FAILED"
    assert topic not in node.admin("alice").list_topics(timeout=10).topics, "Metadata shows only what alice may Describe"
    assert topic in node.admin().list_topics(timeout=10).topics
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        node.admin("alice").create_topics([NewTopic("alice-own", 1, 1)])["alice-own"].result(timeout=30)
    anon = {"bootstrap.servers": f"127.0.0.1:{node.ports['PLAINTEXT']}"}
    assert code_name(produce_error(anon, topic)) == "TOPIC_AUTHORIZATION_FAILED", "User:ANONYMOUS on the PLAINTEXT listener"


def test_produce_and_consume_need_write_then_read_on_the_topic_and_the_group(node):
    topic = new_topic(node)
    group = f"g-{uuid.uuid4().hex[:6]}"
    before = metric(node.floe.admin_url, "floe_authorization_denials_total")
    assert code_name(produce_error(node.conf("alice"), topic)) == "TOPIC_AUTHORIZATION_FAILED"
    assert node.acl("add", "--allow", "User:alice", "--operation", "Write", "--topic", topic).returncode == 0
    assert produce_error(node.conf("alice"), topic) is None
    with pytest.raises(AssertionError, match="TOPIC_AUTHORIZATION_FAILED|GROUP_AUTHORIZATION_FAILED"):
        consume_all(node.conf("alice")["bootstrap.servers"], topic, 1, group=group, timeout=15,
                    **{k: v for k, v in node.conf("alice").items() if k != "bootstrap.servers"})
    assert node.acl("add", "--allow", "User:alice", "--operation", "Read", "--topic", topic).returncode == 0
    with pytest.raises(AssertionError, match="GROUP_AUTHORIZATION_FAILED"):
        consume_all(node.conf("alice")["bootstrap.servers"], topic, 1, group=group, timeout=15,
                    **{k: v for k, v in node.conf("alice").items() if k != "bootstrap.servers"})
    assert node.acl("add", "--allow", "User:alice", "--operation", "Read", "--group", group).returncode == 0
    got = consume_all(node.conf("alice")["bootstrap.servers"], topic, 1, group=group, timeout=30,
                      **{k: v for k, v in node.conf("alice").items() if k != "bootstrap.servers"})
    assert [m.value() for m in got] == [b"v"]
    assert metric(node.floe.admin_url, "floe_authorization_denials_total") > before
    groups = [g.group_id for g in node.admin("alice").list_consumer_groups().result(timeout=30).valid]
    assert group in groups and all(not g.startswith("reader-") for g in groups), groups


def test_prefixed_patterns_and_deny_over_allow(node):
    tag = uuid.uuid4().hex[:6]
    open_topic, secret = f"logs-{tag}-a", f"logs-{tag}-secret"
    for t in (open_topic, secret):
        node.admin().create_topics([NewTopic(t, 1, 1)])[t].result(timeout=30)
    assert node.acl("add", "--allow", "User:bob", "--operation", "All", "--topic", f"logs-{tag}-", "--prefixed").returncode == 0
    assert node.acl("add", "--deny", "User:bob", "--operation", "Write", "--topic", secret).returncode == 0
    assert produce_error(node.conf("bob"), open_topic) is None
    assert code_name(produce_error(node.conf("bob"), secret)) == "TOPIC_AUTHORIZATION_FAILED"
    seen = set(node.admin("bob").list_topics(timeout=10).topics)
    assert {open_topic, secret} <= seen and all(t.startswith("logs-") or t.startswith("__") for t in seen), seen


def test_configs_deletes_and_table_topics_need_their_own_operations(node):
    topic = new_topic(node)
    alice = node.admin("alice")
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        alice.describe_configs([res])[res].result(timeout=30)
    assert node.acl("add", "--allow", "User:alice", "--operation", "DescribeConfigs", "--topic", topic).returncode == 0
    assert alice.describe_configs([res])[res].result(timeout=30)["retention.ms"] is not None
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        alice.delete_topics([topic])[topic].result(timeout=30)
    # Creating a Table Topic needs AlterConfigs on it besides Create.
    tt = f"tt-{uuid.uuid4().hex[:6]}"
    assert node.acl("add", "--allow", "User:alice", "--operation", "Create", "--topic", tt).returncode == 0
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        alice.create_topics([NewTopic(tt, 1, 1, config={"automq.table.topic.enable": "true"})])[tt].result(timeout=30)
    alice.create_topics([NewTopic(tt, 1, 1)])[tt].result(timeout=30)
    ttres = ConfigResource(ConfigResource.Type.TOPIC, tt, set_config={"automq.table.topic.enable": "true"})
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        alice.alter_configs([ttres])[ttres].result(timeout=30)
    assert node.acl("add", "--allow", "User:alice", "--operation", "Delete", "--topic", topic).returncode == 0
    alice.delete_topics([topic])[topic].result(timeout=30)


def test_the_acl_api_needs_alter_on_the_cluster_and_works_for_admin_clients(node):
    binding = AclBinding(ResourceType.GROUP, "ops-", ResourcePatternType.PREFIXED, "User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException, match="CLUSTER_AUTHORIZATION_FAILED"):
        node.admin("alice").create_acls([binding])[binding].result(timeout=30)
    admin = node.admin()
    admin.create_acls([binding])[binding].result(timeout=30)
    flt = AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY, "User:bob", None, AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(flt).result(timeout=30) == [binding]
    listed = node.acl("list", "--group", "ops-team")
    assert "Group:PREFIXED:ops-\tUser:bob\tALLOW\tRead\t*" in listed.stdout, listed.stdout + listed.stderr
    assert admin.delete_acls([flt])[flt].result(timeout=30) == [binding]
    assert admin.describe_acls(flt).result(timeout=30) == []
    bad = node.acl("add", "--allow", "bob", "--operation", "Read", "--topic", "x")
    assert bad.returncode != 0 and "User:name" in bad.stderr


def test_acls_survive_a_restart(node):
    topic = new_topic(node)
    assert node.acl("add", "--allow", "User:bob", "--operation", "Write", "--topic", topic).returncode == 0
    node.floe.restart()
    node.read_ports()
    assert produce_error(node.conf("bob"), topic) is None
    assert code_name(produce_error(node.conf("alice"), topic)) == "TOPIC_AUTHORIZATION_FAILED"


def test_acl_apis_say_security_is_disabled_without_the_authorizer(floe):
    admin = AdminClient({"bootstrap.servers": floe.bootstrap})
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:x", "*", AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException, match="SECURITY_DISABLED"):
        admin.create_acls([binding])[binding].result(timeout=30)


def test_a_client_certificate_is_the_principal_after_the_mapping_rules(tmp_path):
    from pki import Ca
    ca = Ca(tmp_path, "floe")
    server_cert, server_key = ca.issue("localhost", stem="server")
    client = ca.issue("robot-7", server=False)
    node = AclNode(tmp_path, ("SASL_PLAINTEXT", "SSL"),
                   'ssl_principal_mapping_rules = "RULE:^CN=(.*?),O=.*$/$1/,DEFAULT"\n'
                   f'[tls]\ncert_file = "{server_cert}"\nkey_file = "{server_key}"\nclient_ca_file = "{ca.cert_file}"\nclient_auth = "requested"\n')
    try:
        topic = new_topic(node)
        ssl_conf = {"bootstrap.servers": f"127.0.0.1:{node.ports['SSL']}", "security.protocol": "SSL", "ssl.ca.location": ca.cert_file}
        with_cert = {**ssl_conf, "ssl.certificate.location": client[0], "ssl.key.location": client[1]}
        assert code_name(produce_error(with_cert, topic)) == "TOPIC_AUTHORIZATION_FAILED"
        assert node.acl("add", "--allow", "User:robot-7", "--operation", "Write", "--topic", topic).returncode == 0
        assert produce_error(with_cert, topic) is None, "the certificate's CN is the principal"
        assert code_name(produce_error(ssl_conf, topic)) == "TOPIC_AUTHORIZATION_FAILED", "no certificate: User:ANONYMOUS"
    finally:
        node.floe.stop()


def test_a_table_topics_table_follows_its_topic_acls_in_the_catalog(tmp_path):
    """With catalog_oauth, a catalog client is the user whose credentials it presented: reading a
    Table Topic's table needs Read on the topic, changing it Alter."""
    import json
    import time

    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import ForbiddenError, NoSuchTableError

    node = AclNode(tmp_path, ("SASL_PLAINTEXT",), "catalog_oauth = true\n")
    try:
        topic = new_topic(node, config={"automq.table.topic.enable": "true", "automq.table.topic.commit.interval.ms": "300",
                                        "automq.table.topic.convert.value.type": "json", "automq.table.topic.transform.value.type": "flatten"})
        p = Producer({**node.conf("admin")})
        p.produce(topic, json.dumps({"id": 1}).encode())
        assert p.flush(30) == 0
        admin_cat = RestCatalog("floe", uri=node.floe.catalog_url, credential=f"admin:{PASSWORDS['admin']}")
        deadline = time.time() + 40
        while time.time() < deadline:
            try:
                if admin_cat.load_table(("default", topic)).scan().to_arrow().num_rows == 1:
                    break
            except NoSuchTableError:
                pass
            time.sleep(0.3)
        alice = RestCatalog("floe", uri=node.floe.catalog_url, credential=f"alice:{PASSWORDS['alice']}")
        with pytest.raises(ForbiddenError):
            alice.load_table(("default", topic))
        assert node.acl("add", "--allow", "User:alice", "--operation", "Read", "--topic", topic).returncode == 0
        assert [r["id"] for r in alice.load_table(("default", topic)).scan().to_arrow().to_pylist()] == [1]
        with pytest.raises(ForbiddenError):
            alice.drop_table(("default", topic))
        assert admin_cat.load_table(("default", topic)) is not None, "the table is still there"
    finally:
        node.floe.stop()
