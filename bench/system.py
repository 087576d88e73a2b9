"""The processes the bench starts, and what /proc says about their CPU time and memory."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

_live: set[subprocess.Popen[bytes]] = set()


class BenchError(Exception):
    """A stage could not be measured; the message says why."""


def stop_everything() -> None:
    """Kill the process group of every child still running (the last line of defence on failure or Ctrl-C)."""
    for process in list(_live):
        _kill_group(process)
    _live.clear()


def _kill_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.returncode is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.wait(10)


# /proc ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    comm: str
    cpu: float  # user + system seconds of the process itself
    reaped_cpu: float  # user + system seconds of its children that it has waited for


def read_stat(pid: int) -> ProcStat | None:
    """One process's /proc/PID/stat, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = data[data.index("(") + 1 : data.rindex(")")]
    fields = data[data.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) / CLOCK_TICKS for value in fields[11:15])
    return ProcStat(pid, int(fields[1]), comm, utime + stime, cutime + cstime)


def all_stats() -> list[ProcStat]:
    """Every process /proc shows."""
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))) is not None:
            stats.append(stat)
    return stats


def process_tree(root: int) -> list[ProcStat]:
    """A process and all its descendants."""
    stats = all_stats()
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    tree = [stat for stat in stats if stat.pid == root]
    for stat in tree:
        tree.extend(children.get(stat.pid, []))
    return tree


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


@dataclass(frozen=True)
class TreeSample:
    """CPU seconds and memory of a process tree at one moment."""

    cpu: float
    rss: int  # bytes, summed over the tree
    peak_rss: int  # bytes: the sum of each process's own peak (VmHWM), an upper bound of the tree's peak
    processes: int


def sample_tree(root: int) -> TreeSample:
    """The tree's CPU (its processes' own time plus what the root has reaped) and memory now."""
    tree = process_tree(root)
    cpu = sum(stat.cpu for stat in tree) + sum(stat.reaped_cpu for stat in tree if stat.pid == root)
    rss = sum(_status_kib(stat.pid, "VmRSS") for stat in tree) * 1024
    peak = sum(_status_kib(stat.pid, "VmHWM") for stat in tree) * 1024
    return TreeSample(cpu, rss, peak, len(tree))


def postgres_cpu() -> float | None:
    """CPU seconds of the local PostgreSQL server: its live processes plus the backends the postmaster reaped."""
    stats = [stat for stat in all_stats() if stat.comm.startswith("postgres")]
    pids = {stat.pid for stat in stats}
    masters = [stat for stat in stats if stat.ppid not in pids]
    if len(masters) != 1:
        return None
    return sum(stat.cpu for stat in stats) + masters[0].reaped_cpu


# Children run to their end ---------------------------------------------------------------------------------------


@dataclass
class Finished:
    """A child that ran to its end: exit code, output, wall time, and its own rusage."""

    command: Sequence[str]
    code: int
    stdout: str
    stderr: str
    seconds: float
    cpu_user: float
    cpu_system: float
    max_rss: int  # bytes
    stderr_lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, line)

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_system

    def describe(self) -> str:
        """The command, its exit code and the end of its stderr, for an error message."""
        tail = "\n".join(self.stderr.strip().splitlines()[-15:])
        return f"{' '.join(self.command)} exited with {self.code}:\n{tail}"


class Child:
    """A command running in its own process group; its stderr lines are timestamped as they arrive."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], workdir: Path) -> None:
        self.command = list(command)
        self._stdout: IO[bytes] = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115 (closed by finish)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            env=dict(env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _live.add(self.process)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._usage: resource.struct_rusage | None = None
        self.ended: float | None = None

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append((time.monotonic() - self.started, raw.decode(errors="replace").rstrip("\n")))

    def poll(self) -> bool:
        """True once the child has exited (it is reaped here, with its rusage)."""
        if self.ended is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.ended = time.monotonic()
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._usage = usage
        _live.discard(self.process)
        return True

    def finish(self, timeout: float) -> Finished:
        """Wait for the end; past `timeout` the child is killed and BenchError raised."""
        deadline = self.started + timeout
        try:
            while not self.poll():
                if time.monotonic() > deadline:
                    raise BenchError(f"{' '.join(self.command)} still running after {timeout:g} s: killed")
                time.sleep(0.01)
        finally:
            self.kill()
        self._reader.join(10)
        self._stdout.seek(0)
        stdout = self._stdout.read().decode(errors="replace")
        self._stdout.close()
        assert self.ended is not None
        assert self._usage is not None
        return Finished(
            self.command,
            self.process.returncode,
            stdout,
            "\n".join(line for _, line in self.lines),
            self.ended - self.started,
            self._usage.ru_utime,
            self._usage.ru_stime,
            self._usage.ru_maxrss * 1024,
            list(self.lines),
        )

    def kill(self) -> None:
        """Stop the child's whole process group if it is still running."""
        if self.ended is None:
            _kill_group(self.process)
            _live.discard(self.process)


def run(command: Sequence[str], env: Mapping[str, str], workdir: Path, timeout: float = 120.0) -> Finished:
    """Run a command to its end."""
    return Child(command, env, workdir).finish(timeout)


def run_ok(command: Sequence[str], env: Mapping[str, str], workdir: Path, timeout: float = 120.0) -> Finished:
    """Run a command to its end; BenchError if it exits non-zero."""
    done = run(command, env, workdir, timeout)
    if done.code != 0:
        raise BenchError(done.describe())
    return done


# Workers ---------------------------------------------------------------------------------------------------------


class Worker:
    """A `celery worker` in its own process group, its output in a log file."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _live.add(self.process)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        """The last lines of the worker's log."""
        return "\n".join(self.output().splitlines()[-lines:])

    def check_alive(self) -> None:
        """BenchError, with the end of its log, if the worker has exited."""
        if self.process.poll() is not None:
            raise BenchError(
                f"worker {self.name} exited with {self.process.returncode}; the end of {self.log}:\n{self.tail()}"
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for Celery's 'ready.' line."""
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"worker {self.name} not ready after {timeout:g} s; the end of {self.log}:\n{self.tail()}"
                )
            time.sleep(0.05)

    def sample(self) -> TreeSample:
        """CPU and memory of the worker's process tree (main process and pool processes)."""
        return sample_tree(self.process.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM to the main process), then SIGKILL to the group if it does not end in time."""
        if self.process.poll() is None:
            self.process.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool processes left behind, if any
        if self.process.returncode is None:
            self.process.wait(10)
        _live.discard(self.process)
        self._log_file.close()


@contextmanager
def running_worker(
    name: str, command: Sequence[str], env: Mapping[str, str], log: Path, ready_timeout: float = 60.0
) -> Iterator[Worker]:
    """A worker, ready, for the length of the block; stopped however the block ends."""
    worker = Worker(name, command, env, log)
    try:
        worker.wait_ready(ready_timeout)
        yield worker
    finally:
        worker.stop()
