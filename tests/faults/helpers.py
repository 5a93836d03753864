"""Shared bits of the fault tests: the probe listener's port, timed probes, /proc counts."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

from tests.support import Gunicorn, Response, request, wait_until

PROBE_ENV = {"ZDT_PROBE_BIND": "127.0.0.1:0"}


def probe_port(server: Gunicorn) -> int:
    """The probe listener's port, from the master's log line."""
    pattern = r"probe listener at http://127\.0\.0\.1:(\d+)/"
    return int(server.wait_for_log(pattern)[0])


def listener_pid(server: Gunicorn) -> int:
    return int(server.wait_for_log(r"probe listener at \S+ \(pid (\d+)\)")[0])


def app_workers(server: Gunicorn, n: int) -> list[int]:
    """The master's worker pids (its children minus the probe listener), once there are ``n``."""
    listener = listener_pid(server)

    def workers() -> list[int]:
        found = [pid for pid in server.workers() if pid != listener]
        return found if len(found) == n else []

    return wait_until(workers, 15, f"{n} workers", server.log)


def timed(port: int, path: str, timeout: float = 5.0) -> tuple[Response | None, float]:
    """(response or None on a socket error/timeout, seconds it took)."""
    started = time.monotonic()
    try:
        return request(port, path, timeout=timeout), time.monotonic() - started
    except OSError:
        return None, time.monotonic() - started


def status(port: int, path: str, timeout: float = 2.0) -> int | None:
    r, _ = timed(port, path, timeout)
    return None if r is None else r.status


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def stop_group_hard(server: Gunicorn) -> None:
    """The kubelet's grace-period SIGKILL: every process of the pod at once."""
    os.killpg(server.pid, signal.SIGKILL)
    wait_until(lambda: server.proc is not None and server.proc.poll() is not None, 10, "exit")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state whose socket ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
