"""SASL OAUTHBEARER with real clients: JWTs signed by a key in the node's JWKS file pass; expired,
foreign-key and wrong-audience tokens are refused; the token's expiry bounds the session."""

import base64
import json
import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import Floe, floe_binary
from helpers import consume_all, create_topic, produce


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Idp:
    """An identity provider: an RSA key, its JWKS, and tokens it signs."""

    def __init__(self, kid):
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = self.key.public_key().public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64url(n), "e": b64url(nums.e.to_bytes(3, "big"))}

    def token(self, sub="svc-orders", lifetime_s=300, aud="floe", iss="https://idp.test"):
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        exp = int(time.time()) + lifetime_s
        claims = {"sub": sub, "iss": iss, "aud": aud, "iat": int(time.time()), "exp": exp}
        signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{b64url(sig)}", exp


@pytest.fixture(scope="module")
def oauth_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oauth")
    idp = Idp("key-1")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [idp.jwk]}))
    config = tmp / "floe.toml"
    config.write_text('listeners = ["SASL_PLAINTEXT://127.0.0.1:0"]\nsasl_enabled_mechanisms = ["OAUTHBEARER"]\n'
                      f'sasl_oauthbearer_jwks_file = "{jwks}"\nsasl_oauthbearer_expected_issuer = "https://idp.test"\n'
                      'sasl_oauthbearer_expected_audience = "floe"\nsasl_oauthbearer_clock_skew_seconds = 0\n')
    node = Floe(floe_binary(), tmp / "floe", extra=["--config", str(config)]).start()
    yield node, idp
    node.stop()


def conf(node, make_token):
    def oauth_cb(_config):
        return make_token()
    return {"bootstrap.servers": node.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb}


def refused(c):
    try:
        admin = AdminClient({**c, "socket.timeout.ms": 3000})
        admin.poll(1)  # serves oauth_cb
        admin.list_topics(timeout=4)
        return False
    except KafkaException:
        return True


def test_librdkafka_and_kafka_python_log_in_with_a_signed_token(oauth_node):
    node, idp = oauth_node
    c = conf(node, idp.token)
    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    extra = {k: v for k, v in c.items() if k != "bootstrap.servers"}
    create_topic(node.bootstrap, topic, **extra)
    produce(node.bootstrap, topic, [b"a", b"b"], **extra)
    assert sorted(m.value() for m in consume_all(node.bootstrap, topic, 2, **extra)) == [b"a", b"b"]

    from kafka import KafkaConsumer
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return idp.token(sub="kp-client")[0]

    kc = KafkaConsumer(topic, bootstrap_servers=node.bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                       sasl_oauth_token_provider=Provider(), auto_offset_reset="earliest", consumer_timeout_ms=10000)
    assert sorted(m.value for m in kc) == [b"a", b"b"]
    kc.close()


def test_expired_foreign_and_misaddressed_tokens_are_refused(oauth_node):
    node, idp = oauth_node
    stranger = Idp("key-1")
    # librdkafka itself refuses a token it knows to be expired: tell it a later expiry.
    assert refused(conf(node, lambda: (idp.token(lifetime_s=-60)[0], time.time() + 300)))
    assert refused(conf(node, stranger.token)), "same kid, another key"
    assert refused(conf(node, lambda: idp.token(aud="another-service")))
    assert refused(conf(node, lambda: idp.token(iss="https://evil.test")))
    assert not refused(conf(node, idp.token))


def test_the_session_ends_with_the_token_and_librdkafka_reauthenticates(oauth_node):
    from test_security import metric
    node, idp = oauth_node
    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    c = conf(node, lambda: idp.token(lifetime_s=5))
    extra = {k: v for k, v in c.items() if k != "bootstrap.servers"}
    create_topic(node.bootstrap, topic, **extra)
    from confluent_kafka import Producer
    p = Producer(c)
    p.poll(1)
    before = metric(node.admin_url, "floe_sasl_authentications_total", '{result="ok"}')
    errors, delivered = [], []
    end = time.time() + 12
    while time.time() < end:
        p.produce(topic, b"x", on_delivery=lambda e, m: (errors if e else delivered).append(e))
        p.poll(0.1)
    p.flush(30)
    assert delivered and not errors, errors
    # Sessions of at most 5 s (the token's life) over 12 s: the producer authenticated again.
    assert metric(node.admin_url, "floe_sasl_authentications_total", '{result="ok"}') - before >= 2
