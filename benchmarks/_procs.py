"""Shared by the benchmark scripts: stop a server started in its own process group, read a
process's memory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Quick-stop Gunicorn (SIGINT), then SIGKILL its whole group if it lingers."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def terminate_group(proc: subprocess.Popen[bytes]) -> None:
    """Graceful stop (SIGTERM, up to 15 s), then SIGKILL whatever of the group is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` from /proc, in KiB (0 if the kernel does not say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
