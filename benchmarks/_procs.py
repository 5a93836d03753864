"""Shared by the benchmark scripts: stop a server started in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Quick-stop Gunicorn (SIGINT), then SIGKILL its whole group if it lingers."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
