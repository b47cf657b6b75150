"""A throwaway PostgreSQL 15 cluster on loopback (Debian's binaries, run as user `postgres`), with
`wal_level=logical` for Debezium, driven through `psql`."""

import os
import pwd
import shutil
import subprocess
import tempfile

from conftest import free_port

BIN = "/usr/lib/postgresql/15/bin"


def available():
    return os.path.exists(f"{BIN}/initdb") and shutil.which("psql") is not None and _pg_user() is not None and os.geteuid() == 0


def _pg_user():
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


class Postgres:
    """One cluster in a directory of its own (owned by `postgres`), trust auth on loopback."""

    def __init__(self):
        user = _pg_user()
        self.dir = tempfile.mkdtemp(prefix="floe-pg-")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()

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
