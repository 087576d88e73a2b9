"""A PostgreSQL cluster and a Redis server of the fault suite's own, on free ports in a temporary directory.

The faults stop, kill and starve these servers; the shared ones on 5432 and 6379 serve everybody else's tests.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postgres_bin(name: str) -> str:
    # The newest installed major version; Debian puts the server binaries outside PATH.
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(Path(path).parts[4]))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"no PostgreSQL {name} in /usr/lib/postgresql/*/bin or on PATH")
    return on_path


class PrivatePostgres:
    """A throwaway cluster: trust auth on 127.0.0.1, small shared_buffers, fsync on (the faults include crashes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        # initdb and the server refuse to run as root: as root (CI containers), the cluster belongs to postgres.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(root, "postgres")
        # initdb --no-sync only skips flushing the new cluster's files once; the server itself runs with fsync on.
        self._run(_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}\n{log}")

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c shared_buffers=16MB -c fsync=on -c max_connections=60"
        )
        self._run(
            _postgres_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends the sessions and checkpoints, `immediate` is a crash (recovery at start)."""
        self._run(_postgres_bin("pg_ctl"), "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))

    def running(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        return pid_file.exists()

    def remove(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server with an append-only file synced on every write, as a broker that survives a restart must be."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.root),
            "appendonly": "yes",
            "appendfsync": "always",
            "save": "",
        }
        command = ["redis-server", *(part for name, value in options.items() for part in (f"--{name}", value))]
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    pass
                except redis.exceptions.BusyLoadingError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{(self.root / 'redis.log').read_text()}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crashed host would: only what the append-only file holds survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def temporary_root(label: str) -> Path:
    """A new directory for a private server; the caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=f"abcbank-faults-{label}-"))
    path.chmod(0o755)
    return path
