"""Real Gunicorn masters for tests: own session, port 0, log file, deadlines, TERM then KILL."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float, what: str, log: Callable[[], str] | None = None
) -> T:
    """Poll ``predicate`` until truthy; fail with its last value (and the log) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            tail = f"\n--- log ---\n{log()}" if log else ""
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; last: {value!r}{tail}"
            )
        time.sleep(0.02)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def request(
    port: int,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 10,
) -> Response:
    """One HTTP request; on a fresh connection unless ``conn`` is given (keep-alive)."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        if own:
            c.close()


class TcpServer:
    """A real TCP server on a free 127.0.0.1 port, accepting in a thread.

    As is, it never answers (a hung dependency); a subclass serves each connection in
    :meth:`handle`. :meth:`close` closes the listener and every connection, as a dying
    process does.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        """Called in the accepting thread for each new connection; the default never answers."""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
        self.sock.close()
        for conn in self.conns:
            conn.close()


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> its live (not zombie) child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # field 3 (state) and 4 (ppid) follow the ")" that closes the command name
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def require_worker_class(config: str) -> None:
    """Skip when ``config`` (a worker class name or config text) needs gevent and it is absent."""
    if "gevent" in config and importlib.util.find_spec("gevent") is None:
        pytest.skip("gevent is not installed (pip install gunicorn-zdt[gevent])")


@contextlib.contextmanager
def resumed_after(paused: list[int]) -> Iterator[list[int]]:
    """SIGCONT every pid in ``paused`` (the list may grow inside the block) on the way out."""
    try:
        yield paused
    finally:
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the master's workers), from /proc."""
    return sorted(process_tree().get(pid, []))


@dataclass
class Gunicorn:
    """A real Gunicorn master running ``app`` with a config written into ``tmp``."""

    tmp: Path
    config: str = ""
    app: str = "tests.apps:app"
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    hooks: bool = True
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def __post_init__(self) -> None:
        self.log_path = self.tmp / "gunicorn.log"
        self.conf_path = self.tmp / "gunicorn_test.conf.py"

    def start(self, wait_ready: bool = True) -> Gunicorn:
        base = textwrap.dedent(
            """
            control_socket_disable = True  # Gunicorn >= 25: no shared ~/.gunicorn socket
            workers = 2
            loglevel = "info"
            """
        )
        install = "\nfrom gunicorn_zdt.hooks import install\ninstall(globals())\n"
        self.conf_path.write_text(
            base + textwrap.dedent(self.config) + (install if self.hooks else "")
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZDT_", "GUNICORN"))}
        env.update({"DATABASE_URL": f"sqlite:///{self.tmp / 'test.db'}", "PYTHONUNBUFFERED": "1"})
        env.update(self.env)
        # The console script, as users run it: `python -m gunicorn` would re-exec (USR2) with
        # gunicorn's own folder first on sys.path, where its `http` package shadows the stdlib.
        cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", str(self.conf_path)]
        cmd += ["--bind", "127.0.0.1:0", *self.args, self.app]
        self._log = open(self.log_path, "ab")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_ready:
            self.wait_listening()
            self.wait_ready()
        return self

    # -- observation ---------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 15, count: int = 1) -> list[str]:
        def found() -> list[str]:
            hits = re.findall(pattern, self.log())
            return hits if len(hits) >= count else []

        return wait_until(found, timeout, f"log line {pattern!r} x{count}", self.log)

    def wait_listening(self, timeout: float = 20) -> int:
        def port() -> int:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited {self.proc.returncode}:\n{self.log()}")
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log())
            return int(m.group(1)) if m else 0

        self.port = wait_until(port, timeout, "Listening at", self.log)
        return self.port

    def wait_ready(self, timeout: float = 20) -> None:
        wait_until(lambda: self.try_get("/healthz/ready") == 200, timeout, "ready", self.log)

    def try_get(self, path: str) -> int | None:
        try:
            return self.get(path, timeout=2).status
        except OSError:
            return None

    def get(self, path: str, **kw: Any) -> Response:
        return request(self.port, path, **kw)

    def answers_from_every_worker(self, path: str, expect: int, workers: list[int]) -> set[int]:
        """Fresh connections until each of ``workers`` answered ``path``, each with ``expect``.

        The kernel hands a new connection to whichever worker accepts first, and one hot
        worker can win every time (seen: 300 of 300 on gthread with the other core busy). So
        each worker that answered is paused (SIGSTOP), leaving the listening socket to those
        not yet heard from; all are resumed before returning. Needs X-Worker-Pid (tests.apps).
        """
        seen: dict[int, int] = {}
        paused: list[int] = []

        def all_seen() -> bool:
            r = self.get(path)
            pid = int(r.headers["x-worker-pid"])
            assert r.status == expect, (pid, r.status, r.body, self.log())
            seen[pid] = r.status
            done = set(workers) <= set(seen)
            if not done and pid not in paused:
                os.kill(pid, signal.SIGSTOP)
                paused.append(pid)
            return done

        with resumed_after(paused):
            wait_until(all_seen, 20, f"{path} answered by every worker {workers}", self.log)
        return set(seen)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers(self) -> list[int]:
        return children(self.pid)

    def wait_workers(self, n: int, timeout: float = 15) -> list[int]:
        return wait_until(
            lambda: w if len(w := self.workers()) == n else [], timeout, f"{n} workers", self.log
        )

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"gunicorn still running after {timeout} s:\n{self.log()}"
            ) from None

    def stop(self) -> None:
        """Quick-stop the master, then KILL its whole process group: no process is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):  # stragglers, e.g. a USR2 child master
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SlowRequest(threading.Thread):
    """One ``/work?ms=`` request on its own connection; ``status`` is None until it got an
    answer (and stays None after a socket error), so a test can check how it ended."""

    def __init__(self, port: int, ms: int) -> None:
        super().__init__(daemon=True)
        self.port, self.ms = port, ms
        self.status: int | None = None

    def run(self) -> None:
        with contextlib.suppress(OSError):
            self.status = request(self.port, f"/work?ms={self.ms}", timeout=30).status


def slow_requests(port: int, n: int, ms: int) -> list[SlowRequest]:
    """``n`` requests of ``ms`` each in flight on ``port``, each on its own connection."""
    requests = [SlowRequest(port, ms) for _ in range(n)]
    for r in requests:
        r.start()
    return requests
