"""Pod processes: one Gunicorn master per pod, each in its own process group.

The command template's first process is the pod's "PID 1": SIGTERM goes to it alone,
as the kubelet's container runtime does; SIGKILL at the grace deadline, and the
teardown after the main process exited, go to the whole process group (the
container's cgroup). Every group ever started is remembered by a :class:`ProcessGroups`
so that :meth:`ProcessGroups.kill_all` can stop them on any exit path.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_low() -> int:
    """First port of the kernel's ephemeral range (what bind-to-0 and connect() draw from)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(port_range: tuple[int, int] | None = None) -> int:
    """A free port on 127.0.0.1 for a server started later, below the ephemeral range
    (or in ``port_range``, both ends included, when the user chose one).

    A port the kernel picks (bind to 0) comes from the ephemeral range, which every outgoing
    connection (load clients, balancer, probes) also draws from: one of them can take it
    between this call and the server's bind ("Address already in use", seen in CI).
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        if port_range is not None:
            port = rng.randint(*port_range)
        else:
            port = rng.randrange(10_000, low) if low > 11_000 else 0
        with _handed_out_lock, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if port in _handed_out:
                continue
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
            _handed_out.add(port)
            return port
    where = "below the ephemeral range"
    if port_range is not None:
        where = f"in --pod-ports {port_range[0]}-{port_range[1]}"
    raise OSError(f"no free port on 127.0.0.1 {where}")


class ProcessGroups:
    """Every process group the rehearsal started; ``kill_all`` SIGKILLs the live ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[int, subprocess.Popen[bytes]] = {}
        atexit.register(self.kill_all)

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._groups[proc.pid] = proc

    def kill_group(self, pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def kill_all(self) -> None:
        """SIGKILL every group we started, including one whose Popen was interrupted
        (Ctrl-C between fork and our bookkeeping): any child of ours that leads a group."""
        with self._lock:
            procs = list(self._groups.values())
        for proc in procs:
            self.kill_group(proc.pid)
        for pgid in _child_group_leaders():
            self.kill_group(pgid)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _child_group_leaders() -> list[int]:
    """PIDs of this process's children that lead their own process group (Linux /proc)."""
    me = os.getpid()
    leaders: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return leaders
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ppid, pgrp = int(fields[1]), int(fields[2])
        if ppid == me and pgrp == int(entry):
            leaders.append(pgrp)
    return leaders


@dataclass
class PodProcess:
    """One pod: its process and what happened to it (times in rehearsal seconds).

    Not :class:`gunicorn_zdt.check.pod.Pod` (a pod template as the checker reads it): this
    is a running process the rehearsal started.
    """

    name: str
    revision: int
    port: int
    command: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    probe_ports: dict[str, int] = field(default_factory=dict)  # kind -> port, else ``port``
    proc: subprocess.Popen[bytes] | None = None
    created_at: float | None = None
    ready: bool = False
    ready_since: float | None = None
    terminating: bool = False
    deleted_at: float | None = None
    sigterm_at: float | None = None
    exited_at: float | None = None
    exit_code: int | None = None
    sigkilled: bool = False
    restarts: int = 0
    readiness_failed_at: float | None = None  # first failing readiness probe after deletion
    readiness_failing_status: int | None = None  # its HTTP status; None: no answer
    drain_seen_at: float | None = None  # first readiness answer 503 after SIGTERM
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, groups: ProcessGroups) -> None:
        """Start (or restart) the pod's main process in a new session / process group."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in reap()
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        groups.add(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_main(self, signum: int) -> bool:
        """Signal the main process only (the container's PID 1). False if it is gone."""
        if not self.alive():
            return False
        assert self.proc is not None
        try:
            os.kill(self.proc.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def reap(self, groups: ProcessGroups) -> None:
        """After the main process exited: kill what is left of the group, close the log."""
        if self.proc is not None:
            groups.kill_group(self.proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def build_command(template: str, port: int) -> list[str]:
    """``"gunicorn app:app --bind 127.0.0.1:{port}"`` -> argv for this pod."""
    if "{port}" not in template:
        raise ValueError(
            f"the pod command {template!r} has no {{port}} placeholder; add e.g. "
            "--bind 127.0.0.1:{port} so every pod listens on its own port"
        )
    return shlex.split(template.replace("{port}", str(port)))


def pod_environment(extra: dict[str, str]) -> dict[str, str]:
    """The rehearsal's environment plus ``extra``, with this interpreter's bin dir on PATH
    (so ``gunicorn`` in a command template is the one installed next to it)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env
