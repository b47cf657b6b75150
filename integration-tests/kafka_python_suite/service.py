"""Stand-in for kafka-python's `test/service.py`, which its sdist does not ship.

With KAFKA_URI set their fixtures only need an ExternalService holding host and port; spawning a
broker is not possible here (and not wanted: the broker under test is Floe)."""


class ExternalService:
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def start(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("this run uses an external broker (KAFKA_URI); nothing is spawned")
