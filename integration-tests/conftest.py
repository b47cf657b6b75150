"""Fixtures that run the real `floe` binary on loopback for the client tests."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

READY = re.compile(r"floe listening kafka=(\S+) schema_registry=(\S+) catalog=(\S+) admin=(\S+)")


class Floe:
    """One `floe serve` process; restartable on the same port and data directory."""

    def __init__(self, binary, data_dir, extra=(), env=None):
        self.env = env or {}
        self.binary = binary
        self.data_dir = str(data_dir)
        self.extra = list(extra)
        self.port = 0
        self.registry_port = 0
        self.catalog_port = 0
        self.admin_port = 0
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "floe.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def registry_url(self):
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def catalog_url(self):
        return f"http://127.0.0.1:{self.catalog_port}"

    def start(self, timeout=30):
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "a")
        start_at = log.tell()
        args = [self.binary, "serve", "--data-dir", self.data_dir, "--kafka-listen", f"127.0.0.1:{self.port}",
                "--schema-registry-listen", f"127.0.0.1:{self.registry_port}",
                "--catalog-listen", f"127.0.0.1:{self.catalog_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}", *self.extra]
        env = dict(os.environ, FLOE_LOG=os.environ.get("FLOE_LOG", "info"), **self.env)
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floe exited with {self.proc.returncode}:\n{self.log_tail()}")
            with open(self.log_path) as f:
                f.seek(start_at)
                m = READY.search(f.read())
            if m:
                self.port = int(m.group(1).rsplit(":", 1)[1])
                self.registry_port = int(m.group(2).rsplit(":", 1)[1])
                self.catalog_port = int(m.group(3).rsplit(":", 1)[1])
                self.admin_port = int(m.group(4).rsplit(":", 1)[1])
                return self
            time.sleep(0.05)
        raise RuntimeError(f"floe did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def log_tail(self, n=40):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def floe_binary():
    b = os.environ.get("FLOE_BIN")
    if not b or not os.path.exists(b):
        pytest.skip("FLOE_BIN is not set: run the tests through scripts/test.sh")
    return b


@pytest.fixture(scope="module")
def floe(tmp_path_factory):
    f = Floe(floe_binary(), tmp_path_factory.mktemp("floe")).start()
    yield f
    f.stop()


@pytest.fixture
def fresh_floe(tmp_path):
    """A node of the test's own, for tests that restart or kill it."""
    f = Floe(floe_binary(), tmp_path / "floe").start()
    yield f
    f.stop(signal.SIGKILL)


@pytest.fixture
def topic_name():
    return f"t-{uuid.uuid4().hex[:10]}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class EtcdServer:
    """A real single-member etcd (Debian's etcd-server) on loopback ports, which a test may stop
    and start again on the same ports and data."""

    def __init__(self, data_dir):
        self.data_dir, self.client, self.peer = data_dir, free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client}"
        self.proc = None

    def start(self):
        peer = f"http://127.0.0.1:{self.peer}"
        self.proc = subprocess.Popen(["etcd", "--name", "t", "--data-dir", str(self.data_dir),
                                      "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                                      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                      "--initial-cluster", f"t={peer}", "--heartbeat-interval", "50", "--election-timeout", "500"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return self
            except Exception:
                if time.time() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def etcd_server(tmp_path):
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian's etcd-server; scripts/test.sh installs it)")
    server = EtcdServer(tmp_path / "etcd").start()
    yield server
    server.stop()


@pytest.fixture
def etcd(etcd_server):
    """A real etcd's client URL."""
    return etcd_server.url
