"""Kafka security with real clients and real handshakes on loopback: named listeners, TLS (and client
certificates), SASL PLAIN and SCRAM-SHA-256/512, SCRAM users, and everything that must be refused."""

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion, UserScramCredentialUpsertion

from conftest import Floe, floe_binary
from helpers import consume_all, create_topic, produce
from pki import Ca

ADMIN_PASSWORD = "admin-s3cret"
ALICE_PASSWORD = "alice-pw,=with odd chars"
LISTENERS = ["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL", "INTERNAL"]


def create_user(data_dir, name, password, mechanism):
    subprocess.run([floe_binary(), "user", "create", name, "--mechanism", mechanism, "--password-stdin", "--data-dir", str(data_dir)],
                   input=password + "\n", text=True, check=True, capture_output=True, timeout=60)


def metric(admin_url, name, labels=""):
    text = urllib.request.urlopen(f"{admin_url}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class Secure:
    """A node with every kind of listener, its PKI, and client configs for each."""

    def __init__(self, tmp, reauth_ms=0):
        self.pki = tmp / "pki"
        self.pki.mkdir()
        self.ca = Ca(self.pki, "floe")
        self.other_ca = Ca(self.pki, "other")
        self.server_cert, self.server_key = self.ca.issue("localhost", stem="server")
        self.client_cert, self.client_key = self.ca.issue("client-1", server=False)
        self.stranger_cert, self.stranger_key = self.other_ca.issue("stranger", server=False)
        data = tmp / "floe"
        data.mkdir()
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            create_user(data, "admin", ADMIN_PASSWORD, mech)
        create_user(data, "alice", ALICE_PASSWORD, "SCRAM-SHA-512")
        config = tmp / "floe.toml"
        config.write_text(
            f'listeners = [{", ".join(f"{chr(34)}{n}://127.0.0.1:0{chr(34)}" for n in LISTENERS)}]\n'
            'advertised_listeners = ["INTERNAL://floe-internal.invalid:19093"]\n'
            f"connections_max_reauth_ms = {reauth_ms}\n"
            "[listener_security_protocol_map]\nINTERNAL = \"PLAINTEXT\"\n"
            f'[tls]\ncert_file = "{self.server_cert}"\nkey_file = "{self.server_key}"\n'
            f'client_ca_file = "{self.ca.cert_file}"\nclient_auth = "requested"\nreload_interval_ms = "200ms"\n')
        self.floe = Floe(floe_binary(), data, extra=["--config", str(config)]).start()
        with open(self.floe.log_path) as f:
            line = re.findall(r"listeners=(\S+)", f.read())[-1]
        self.ports = {name: int(addr.rsplit(":", 1)[1]) for name, addr in (e.split("://") for e in line.split(","))}

    def bootstrap(self, listener):
        return f"127.0.0.1:{self.ports[listener]}"

    def conf(self, listener, mechanism=None, user="admin", password=ADMIN_PASSWORD, cert=None):
        """librdkafka properties for `listener` (its protocol is its name; INTERNAL is PLAINTEXT)."""
        c = {"bootstrap.servers": self.bootstrap(listener), "security.protocol": "PLAINTEXT" if listener == "INTERNAL" else listener}
        if "SSL" in listener:
            c["ssl.ca.location"] = self.ca.cert_file
        if cert:
            c["ssl.certificate.location"], c["ssl.key.location"] = cert
        if "SASL" in listener:
            c.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
        return c


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    s = Secure(tmp_path_factory.mktemp("secure"))
    yield s
    s.floe.stop()


def round_trip(conf, n=20):
    """Creates a topic, produces n records and reads them back, all with `conf`."""
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    extra = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    create_topic(conf["bootstrap.servers"], topic, **extra)
    produce(conf["bootstrap.servers"], topic, [f"v{i}".encode() for i in range(n)], **extra)
    got = consume_all(conf["bootstrap.servers"], topic, n, **extra)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(n))


def refused(conf, timeout=10):
    """Whether a client with `conf` cannot get metadata."""
    admin = AdminClient({**conf, "socket.timeout.ms": 3000})
    try:
        admin.list_topics(timeout=timeout)
        return False
    except KafkaException:
        return True


def test_each_listener_answers_metadata_with_its_own_address(secure):
    for name in ("PLAINTEXT", "INTERNAL"):
        md = AdminClient(secure.conf(name)).list_topics(timeout=10)
        brokers = [(b.host, b.port) for b in md.brokers.values()]
        want = ("floe-internal.invalid", 19093) if name == "INTERNAL" else ("127.0.0.1", secure.ports[name])
        assert brokers == [want], name
    md = AdminClient(secure.conf("SASL_SSL", "SCRAM-SHA-256")).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", secure.ports["SASL_SSL"])]


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_librdkafka_authenticates_with_each_mechanism(secure, listener, mechanism):
    round_trip(secure.conf(listener, mechanism))


def test_a_user_with_only_a_sha512_credential_logs_in_with_it_and_with_plain_but_not_sha256(secure):
    round_trip(secure.conf("SASL_SSL", "SCRAM-SHA-512", "alice", ALICE_PASSWORD), n=3)
    round_trip(secure.conf("SASL_SSL", "PLAIN", "alice", ALICE_PASSWORD), n=3)
    assert refused(secure.conf("SASL_SSL", "SCRAM-SHA-256", "alice", ALICE_PASSWORD))


def test_ssl_with_and_without_a_client_certificate(secure):
    round_trip(secure.conf("SSL"), n=3)
    round_trip(secure.conf("SSL", cert=(secure.client_cert, secure.client_key)), n=3)


def test_wrong_passwords_unknown_users_and_foreign_certificates_are_refused_and_the_node_carries_on(secure):
    before = metric(secure.floe.admin_url, "floe_sasl_authentications_total", '{result="failed"}')
    tls_before = metric(secure.floe.admin_url, "floe_tls_handshake_failures_total")
    assert refused(secure.conf("SASL_SSL", "SCRAM-SHA-256", password="wrong"))
    assert refused(secure.conf("SASL_PLAINTEXT", "SCRAM-SHA-512", user="nobody", password="x"))
    assert refused(secure.conf("SASL_PLAINTEXT", "PLAIN", password="wrong"))
    assert refused(secure.conf("SASL_PLAINTEXT", "PLAIN", user="nobody"))
    assert metric(secure.floe.admin_url, "floe_sasl_authentications_total", '{result="failed"}') >= before + 4
    # A client certificate from a CA the node does not trust (librdkafka would not send it, so by hand).
    ctx = ssl.create_default_context(cafile=secure.ca.cert_file)
    ctx.load_cert_chain(secure.stranger_cert, secure.stranger_key)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=10), server_hostname="localhost") as t:
            t.sendall(frame(18, 0, 1, b""))
            read_response(t)
    # A client that does not trust the node's CA refuses the node.
    assert refused({**secure.conf("SSL"), "ssl.ca.location": secure.other_ca.cert_file})
    assert metric(secure.floe.admin_url, "floe_tls_handshake_failures_total") >= tls_before + 2
    round_trip(secure.conf("SASL_SSL", "SCRAM-SHA-512"), n=3)


# --- the SASL exchange by hand, to tamper with it ---

def frame(api_key, version, correlation, body, flexible=False):
    header = struct.pack(">hhih", api_key, version, correlation, 4) + b"test"
    if flexible:
        header += b"\x00"
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def read_response(s):
    def exactly(n):
        out = b""
        while len(out) < n:
            got = s.recv(n - len(out))
            if not got:
                raise ConnectionError("closed")
            out += got
        return out
    return exactly(struct.unpack(">i", exactly(4))[0])


def kstring(b):
    return struct.pack(">h", len(b)) + b


def kbytes(b):
    return struct.pack(">i", len(b)) + b


def handshake(s, mechanism):
    s.sendall(frame(17, 1, 1, kstring(mechanism.encode())))
    r = read_response(s)
    return struct.unpack(">h", r[4:6])[0]


def authenticate(s, payload, correlation):
    """SaslAuthenticate v1: (error code, auth bytes)."""
    s.sendall(frame(36, 1, correlation, kbytes(payload)))
    r = read_response(s)[4:]
    code = struct.unpack(">h", r[:2])[0]
    n = struct.unpack(">h", r[2:4])[0]
    pos = 4 + max(n, 0)
    blen = struct.unpack(">i", r[pos:pos + 4])[0]
    return code, r[pos + 4:pos + 4 + max(blen, 0)]


def closed(s):
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def scram_final(first_bare, server_first, password, tamper=False):
    attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth = f"{first_bare},{server_first.decode()},{without_proof}".encode()
    proof = bytearray(a ^ b for a, b in zip(client_key, hmac.new(stored, auth, "sha256").digest()))
    if tamper:
        proof[0] ^= 1
    return f"{without_proof},p={base64.b64encode(bytes(proof)).decode()}".encode()


def scram_exchange(secure, tamper=False, replay=None):
    """One SCRAM-SHA-256 login as admin by hand: (client first, client final, final error code)."""
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    assert handshake(s, "SCRAM-SHA-256") == 0
    first_bare = f"n=admin,r={base64.b64encode(os.urandom(18)).decode()}"
    first = replay[0] if replay else f"n,,{first_bare}".encode()
    code, server_first = authenticate(s, first, 2)
    assert code == 0
    final = replay[1] if replay else scram_final(first_bare, server_first, ADMIN_PASSWORD, tamper)
    code, _ = authenticate(s, final, 3)
    if code != 0:
        assert closed(s), "a failed exchange closes the connection"
    s.close()
    return first, final, code


def test_a_tampered_scram_proof_and_a_replayed_exchange_are_refused(secure):
    first, final, code = scram_exchange(secure)
    assert code == 0, "the hand-made exchange is right"
    assert scram_exchange(secure, tamper=True)[2] == 58, "SASL_AUTHENTICATION_FAILED"
    assert scram_exchange(secure, replay=(first, final))[2] == 58, "a replayed exchange"


def test_nothing_but_the_sasl_exchange_is_served_before_authentication(secure):
    metadata_v1 = frame(3, 1, 7, struct.pack(">i", -1))
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    s.sendall(metadata_v1)
    assert closed(s)
    # A large request before authentication is refused by its size alone.
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    s.sendall(struct.pack(">i", 1 << 20) + b"\x00" * 1024)
    assert closed(s)
    # SaslAuthenticate without a handshake.
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    code, _ = authenticate(s, b"\0admin\0" + ADMIN_PASSWORD.encode(), 1)
    assert code == 34 and closed(s), "ILLEGAL_SASL_STATE"
    # An unknown mechanism.
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    assert handshake(s, "GSSAPI") == 33 and closed(s), "UNSUPPORTED_SASL_MECHANISM"
    # Plaintext Kafka to a TLS port gets no Kafka answer.
    s = socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=10)
    s.sendall(frame(18, 0, 1, b""))
    s.settimeout(10)
    try:
        got = s.recv(4096)
    except ConnectionResetError:
        got = b""
    assert not got.startswith(struct.pack(">i", len(got) - 4)) or got == b"", got
    round_trip(secure.conf("SASL_PLAINTEXT", "SCRAM-SHA-256"), n=3)


def test_users_are_managed_over_the_kafka_api_and_the_cli(secure, tmp_path):
    admin_conf = secure.conf("SASL_SSL", "SCRAM-SHA-512")
    admin = AdminClient(admin_conf)
    fut = admin.alter_user_scram_credentials([UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"bob-pw")])
    fut["bob"].result(timeout=30)
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(timeout=30)
    assert [(c.mechanism, c.iterations) for c in described.scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    round_trip(secure.conf("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-pw"), n=3)
    # The CLI, authenticated as admin over SASL_SSL with a librdkafka-style properties file.
    props = tmp_path / "admin.properties"
    props.write_text(f"security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=admin\nsasl.password={ADMIN_PASSWORD}\n"
                     f"ssl.ca.location={secure.ca.cert_file}\n")
    cli = [floe_binary(), "user", "--bootstrap", secure.bootstrap("SASL_SSL"), "--command-config", str(props)]
    listed = subprocess.run(cli + ["list"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "bob\tSCRAM-SHA-256(iterations=8192)" in listed and "alice\tSCRAM-SHA-512" in listed, listed
    subprocess.run(cli + ["create", "carol", "--mechanism", "SCRAM-SHA-512", "--password-stdin"], input="carol-pw\n",
                   text=True, timeout=60, check=True, capture_output=True)
    round_trip(secure.conf("SASL_PLAINTEXT", "SCRAM-SHA-512", "carol", "carol-pw"), n=3)
    subprocess.run(cli + ["delete", "bob"], timeout=60, check=True, capture_output=True)
    assert refused(secure.conf("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-pw"))
    fut = admin.alter_user_scram_credentials([UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)])
    with pytest.raises(KafkaException, match="RESOURCE_NOT_FOUND|no SCRAM"):
        fut["bob"].result(timeout=30)
    bad = subprocess.run(cli[:-2] + ["list"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0, "the CLI without credentials is refused on a SASL listener"


def test_users_survive_a_restart(tmp_path):
    s = Secure(tmp_path)
    try:
        admin = AdminClient(s.conf("SASL_PLAINTEXT", "SCRAM-SHA-512"))
        upsert = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"dave-pw")
        admin.alter_user_scram_credentials([upsert])["dave"].result(timeout=30)
        s.floe.restart()
        with open(s.floe.log_path) as f:
            line = re.findall(r"listeners=(\S+)", f.read())[-1]
        s.ports = {name: int(addr.rsplit(":", 1)[1]) for name, addr in (e.split("://") for e in line.split(","))}
        round_trip(s.conf("SASL_PLAINTEXT", "SCRAM-SHA-512", "dave", "dave-pw"), n=3)
        assert refused(s.conf("SASL_PLAINTEXT", "SCRAM-SHA-512", "dave", "other"))
    finally:
        s.floe.stop()


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path):
    s = Secure(tmp_path)
    try:
        round_trip(s.conf("SSL"), n=2)
        new_ca = Ca(s.pki, "renewed")
        cert, key = new_ca.issue("localhost", stem="renewed-server")
        # Replace the key first, then the certificate, as a renewal tool would (the old pair stays until both match).
        os.replace(key, s.server_key)
        os.replace(cert, s.server_cert)
        conf = {**s.conf("SSL"), "ssl.ca.location": new_ca.cert_file}
        deadline = time.time() + 20
        while refused(conf, timeout=3) and time.time() < deadline:
            time.sleep(0.2)
        round_trip(conf, n=2)
        assert refused(s.conf("SSL")), "clients that trust only the old CA now refuse the node"
    finally:
        s.floe.stop()


def test_sasl_sessions_expire_and_librdkafka_reauthenticates(tmp_path):
    s = Secure(tmp_path, reauth_ms=2000)
    try:
        conf = s.conf("SASL_SSL", "SCRAM-SHA-256")
        topic = f"reauth-{uuid.uuid4().hex[:8]}"
        extra = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
        create_topic(conf["bootstrap.servers"], topic, **extra)
        before = metric(s.floe.admin_url, "floe_sasl_authentications_total", '{result="ok"}')
        from confluent_kafka import Producer
        p = Producer(conf)
        delivered = []
        end = time.time() + 7
        i = 0
        while time.time() < end:
            p.produce(topic, value=str(i).encode(), on_delivery=lambda e, m: delivered.append(e))
            i += 1
            p.poll(0.05)
        p.flush(30)
        assert delivered and all(e is None for e in delivered)
        ok = metric(s.floe.admin_url, "floe_sasl_authentications_total", '{result="ok"}') - before
        assert ok >= 3, f"one producer authenticated {ok} times in 7 s of 2 s sessions"
        # (A request that crosses the session's end closes its connection, as on Kafka; the
        # client reconnects, and no delivery fails, which the assertion above checks.)
    finally:
        s.floe.stop()


def test_kafka_python_and_aiokafka_with_scram_over_tls(secure):
    from kafka import KafkaConsumer, KafkaProducer
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    ctx = ssl.create_default_context(cafile=secure.ca.cert_file)
    common = dict(bootstrap_servers=secure.bootstrap("SASL_SSL"), security_protocol="SASL_SSL", ssl_context=ctx,
                  sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="admin", sasl_plain_password=ADMIN_PASSWORD)
    p = KafkaProducer(**common)
    for i in range(10):
        p.send(topic, f"kp{i}".encode())
    p.flush(30)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **common)
    got = sorted(m.value for m in c)
    c.close()
    assert got == sorted(f"kp{i}".encode() for i in range(10))

    import asyncio
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run():
        common = dict(bootstrap_servers=secure.bootstrap("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password=ALICE_PASSWORD)
        p = AIOKafkaProducer(**common)
        await p.start()
        for i in range(10):
            await p.send_and_wait(topic, f"aio{i}".encode())
        await p.stop()
        c = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **common)
        await c.start()
        out = []
        try:
            async with asyncio.timeout(30):
                while len(out) < 20:
                    m = await c.getone()
                    out.append(m.value)
        finally:
            await c.stop()
        return out

    got = asyncio.run(run())
    assert sorted(got) == sorted([f"kp{i}".encode() for i in range(10)] + [f"aio{i}".encode() for i in range(10)])


def test_kcat_with_scram_over_tls_and_with_a_client_certificate(secure):
    import shutil
    if shutil.which("kcat") is None:
        pytest.skip("no kcat")
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    sasl = ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin",
            "-X", f"sasl.password={ADMIN_PASSWORD}", "-X", f"ssl.ca.location={secure.ca.cert_file}"]
    r = subprocess.run(["kcat", "-b", secure.bootstrap("SASL_SSL"), *sasl, "-P", "-t", topic], input="one\ntwo\nthree\n",
                       text=True, timeout=60, capture_output=True)
    assert r.returncode == 0, r.stderr[-2000:]
    mtls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secure.ca.cert_file}",
            "-X", f"ssl.certificate.location={secure.client_cert}", "-X", f"ssl.key.location={secure.client_key}"]
    out = subprocess.run(["kcat", "-b", secure.bootstrap("SSL"), *mtls, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["one", "two", "three"]


@pytest.mark.parametrize("version", ["3.9.1", "4.3.0"])
def test_the_java_client_with_scram_over_tls(secure, tmp_path, version):
    import shutil
    from test_java import HERE, client_jars, client_jars_4
    if shutil.which("javac") is None:
        pytest.skip("no JDK")
    jars = client_jars() if version == "3.9.1" else client_jars_4()
    if not any("kafka-clients" in os.path.basename(j) for j in jars):
        pytest.skip(f"the kafka-clients {version} jar is not installed (integration-tests/requirements.txt)")
    props = tmp_path / "client.properties"
    props.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                     f'username="alice" password="{ALICE_PASSWORD}";\n'
                     f"ssl.truststore.type=PEM\nssl.truststore.location={secure.ca.cert_file}\n")
    cp = os.pathsep.join(jars)
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, os.path.join(HERE, "java", "FloeSecure.java")], check=True, timeout=120)
    topic = f"java-{version.replace('.', '')}-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(["java", "-cp", os.pathsep.join([str(tmp_path), cp]), "FloeSecure", secure.bootstrap("SASL_SSL"), topic, str(props)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "FLOE-JAVA-SECURE-OK 100" in r.stdout


def test_a_v0_handshake_carries_bare_sasl_tokens(secure):
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    s.sendall(frame(17, 0, 1, kstring(b"PLAIN")))
    assert struct.unpack(">h", read_response(s)[4:6])[0] == 0
    token = b"\0admin\0" + ADMIN_PASSWORD.encode()
    s.sendall(struct.pack(">i", len(token)) + token)
    assert read_response(s) == b"", "an empty token answers a good PLAIN login"
    s.sendall(frame(3, 1, 2, struct.pack(">i", -1)))
    assert struct.unpack(">i", read_response(s)[:4])[0] == 2, "Metadata is served once authenticated"
    s = socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=10)
    s.sendall(frame(17, 0, 1, kstring(b"PLAIN")))
    read_response(s)
    token = b"\0admin\0wrong"
    s.sendall(struct.pack(">i", len(token)) + token)
    assert closed(s), "a failed bare exchange closes the connection"


def test_the_http_listeners_serve_https_with_the_nodes_certificate(tmp_path, monkeypatch):
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from pyiceberg.catalog.rest import RestCatalog

    ca = Ca(tmp_path, "floe")
    cert, key = ca.issue("localhost", stem="server")
    config = tmp_path / "floe.toml"
    config.write_text(f'schema_registry_tls = true\ncatalog_tls = true\nadmin_tls = true\n[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n')
    f = Floe(floe_binary(), tmp_path / "floe", extra=["--config", str(config)]).start()
    try:
        with open(f.log_path) as log:
            assert re.search(r"schema_registry=https://127\.0\.0\.1:\d+ catalog=https://\S+ admin=https://", log.read())
        ctx = ssl.create_default_context(cafile=ca.cert_file)
        metrics = urllib.request.urlopen(f"https://127.0.0.1:{f.admin_port}/metrics", context=ctx, timeout=10).read().decode()
        assert "floe_tls_handshake_failures_total" in metrics
        sr = SchemaRegistryClient({"url": f"https://127.0.0.1:{f.registry_port}", "ssl.ca.location": ca.cert_file})
        sid = sr.register_schema("s-value", Schema('{"type": "string"}', "AVRO"))
        assert json.loads(sr.get_schema(sid).schema_str) in ("string", {"type": "string"})
        # (requests prefers these variables to the session's CA bundle.)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        cat = RestCatalog("floe", uri=f"https://127.0.0.1:{f.catalog_port}", **{"ssl": {"cabundle": ca.cert_file}})
        cat.create_namespace("over_tls")
        assert ("over_tls",) in cat.list_namespaces()
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{f.admin_port}/metrics", timeout=10).read()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"https://127.0.0.1:{f.admin_port}/metrics", context=ssl.create_default_context(), timeout=10)
    finally:
        f.stop()


def test_the_java_client_with_a_client_certificate(tmp_path):
    """mTLS with the Java client: a node that requires client certificates serves the Java client
    that presents one (PEM key store), and refuses the one that does not."""
    import shutil
    from test_java import HERE, client_jars
    if shutil.which("javac") is None:
        pytest.skip("no JDK")
    jars = client_jars()
    if not any(j.endswith("kafka-clients.jar") for j in jars):
        pytest.skip("kafka-clients.jar not found")
    ca = Ca(tmp_path, "floe")
    cert, key = ca.issue("localhost", stem="server")
    client_cert, client_key = ca.issue("java-client", server=False)
    store = tmp_path / "client-store.pem"
    store.write_text(open(client_key).read() + open(client_cert).read())
    config = tmp_path / "floe.toml"
    config.write_text('listeners = ["SSL://127.0.0.1:0"]\n'
                      f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\nclient_ca_file = "{ca.cert_file}"\nclient_auth = "required"\n')
    f = Floe(floe_binary(), tmp_path / "floe", extra=["--config", str(config)]).start()
    try:
        cp = os.pathsep.join(jars)
        subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, os.path.join(HERE, "java", "FloeSecure.java")], check=True, timeout=120)
        base = f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca.cert_file}\n"
        with_cert = tmp_path / "mtls.properties"
        with_cert.write_text(base + f"ssl.keystore.type=PEM\nssl.keystore.location={store}\n")
        r = subprocess.run(["java", "-cp", os.pathsep.join([str(tmp_path), cp]), "FloeSecure", f.bootstrap, "java-mtls", str(with_cert)],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0 and "FLOE-JAVA-SECURE-OK 100" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
        without = tmp_path / "no-cert.properties"
        without.write_text(base + "request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n")
        r = subprocess.run(["java", "-cp", os.pathsep.join([str(tmp_path), cp]), "FloeSecure", f.bootstrap, "java-no-cert", str(without)],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode != 0, "a client without a certificate is refused"
    finally:
        f.stop()
