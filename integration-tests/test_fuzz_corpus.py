"""Real client traffic captured through a recording proxy: every request frame decodes, and the
frames seed the fuzzer's Kafka corpus (`FLOE_FUZZ_CORPUS_OUT=fuzz/corpus` writes them there)."""

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import threading

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer

from conftest import Floe, floe_binary, free_port
from helpers import consume_all, create_topic


class RecordingProxy:
    """Forwards loopback connections to Floe and keeps every request frame a client sends."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.frames = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src, dst, record):
        """Copies src to dst; on the client's side, keeps each whole request frame."""
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if not record:
                    continue
                buf += data
                while len(buf) >= 4:
                    size = struct.unpack(">i", buf[:4])[0]
                    if len(buf) < 4 + size:
                        break
                    with self.lock:
                        self.frames.append(buf[4:4 + size])
                    buf = buf[4 + size:]
        except OSError:
            pass
        finally:
            dst.close()

    def close(self):
        self.sock.close()


def fuzz_binary():
    b = os.environ.get("FLOE_FUZZ")
    if not b or not os.path.exists(b):
        pytest.skip("FLOE_FUZZ is not set: run the tests through scripts/test.sh")
    return b


def test_real_client_requests_decode_and_seed_the_fuzz_corpus(tmp_path, topic_name):
    fuzz = fuzz_binary()
    port = free_port()
    proxy = RecordingProxy(port)
    # The node advertises the proxy, so that clients come back through it after bootstrap.
    node = Floe(floe_binary(), tmp_path / "floe", ["--advertised-listener", f"127.0.0.1:{proxy.port}"])
    node.port = port
    node.start()
    try:
        bootstrap = f"127.0.0.1:{proxy.port}"
        create_topic(bootstrap, topic_name, partitions=2)
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
            p = Producer({"bootstrap.servers": bootstrap, "compression.codec": codec, "enable.idempotence": True})
            for i in range(20):
                p.produce(topic_name, key=str(i).encode(), value=f"{codec}-{i}".encode(), headers={"h": b"v"})
            p.flush(30)
        consume_all(bootstrap, topic_name, 100, group="capture")
        kp = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
        for i in range(10):
            kp.send(topic_name, key=b"k", value=f"kafka-python-{i}".encode())
        kp.flush(30)
        kp.close()
        kc = KafkaConsumer(topic_name, bootstrap_servers=bootstrap, group_id="capture-kp", auto_offset_reset="earliest", consumer_timeout_ms=5000)
        assert sum(1 for _ in kc) >= 110
        kc.close()
    finally:
        node.stop()
        proxy.close()
    frames = list(proxy.frames)
    apis = {struct.unpack(">h", f[:2])[0] for f in frames}
    assert {0, 1, 2, 3, 8, 9, 10, 11, 12, 14, 18, 19} <= apis, f"captured API keys {sorted(apis)}"
    out = tmp_path / "corpus" / "kafka-request"
    out.mkdir(parents=True)
    for f in frames:
        (out / (hashlib.sha1(f).hexdigest()[:16] + ".bin")).write_bytes(f)
    r = subprocess.run([fuzz, "kafka-request", "--replay", "--corpus", str(tmp_path / "corpus")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    keep = os.environ.get("FLOE_FUZZ_CORPUS_OUT")
    if keep:
        dest = os.path.join(keep, "kafka-request")
        os.makedirs(dest, exist_ok=True)
        # One frame per (API, version, size class) keeps the corpus small.
        seen = set()
        for f in sorted(out.iterdir()):
            data = f.read_bytes()
            key = (data[:4], len(data).bit_length())
            if key not in seen:
                seen.add(key)
                shutil.copy(f, dest)
