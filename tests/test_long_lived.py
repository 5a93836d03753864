"""Long-lived requests through a termination: streams end cleanly, cut requests are named.

Real Gunicorn masters running the example app (``GET /events``, ``GET /work``), real
signals and sockets. The SSE client reads raw bytes so that a reset, a missing final
event or a missing end of the chunked body cannot hide behind an HTTP library.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gunicorn_zdt.runtime.state import SERVING_ENTRIES, SERVING_PATH_MAX, SharedState
from tests.support import REPO, request, require_worker_class, wait_until

WORKER_CLASSES = ["sync", "gthread", "gevent"]
DRAIN = {"ZDT_DRAIN_SECONDS": "0.5"}
STOP_BEGINS = re.compile(r"drain ended after ([\d.]+) s \([^)]+\); graceful stop begins")
END_OF_CHUNKED_BODY = b"\r\n0\r\n\r\n"
# faulthandler: `File "…/app.py", line 170 in work`; gevent's greenlet dump has a comma.
HANDLER_FRAME = re.compile(r'File "[^"]*example_app/app\.py", line \d+,? in work\b')


def _config(worker_class: str, extra: str = "") -> str:
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    return f'worker_class = "{worker_class}"\n{threads}{extra}'


class SseClient:
    """One raw HTTP/1.1 request for ``/events``; a thread records every read and how it ended."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.sendall(b"GET /events HTTP/1.1\r\nHost: pod\r\nAccept: text/event-stream\r\n\r\n")
        self.reads: list[tuple[float, bytes]] = []
        self.error: OSError | None = None
        self.eof_at: float | None = None
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self.reads.append((time.monotonic(), data))
            self.eof_at = time.monotonic()
        except OSError as exc:  # ECONNRESET, or our timeout
            self.error = exc
        finally:
            self.sock.close()
            self.done.set()

    @property
    def raw(self) -> bytes:
        return b"".join(data for _, data in self.reads)

    def first_time(self, marker: bytes) -> float | None:
        """When the bytes read so far first contained ``marker``."""
        seen = b""
        for at, data in self.reads:
            seen += data
            if marker in seen:
                return at
        return None


def _body(raw: bytes) -> bytes:
    """The de-chunked body of one HTTP/1.1 response; fails if the chunked framing is broken."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", rest  # the last chunk, an empty trailer, nothing after
            return body
        body, rest = body + rest[:size], rest[size:]
        assert rest.startswith(b"\r\n"), rest[:20]
        rest = rest[2:]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_an_sse_stream_across_sigterm_gets_its_final_event_and_a_clean_end_soon_after_the_drain(
    gunicorn, worker_class: str
) -> None:
    require_worker_class(worker_class)
    server = gunicorn(
        config=_config(worker_class, "graceful_timeout = 10\n"),
        env={**DRAIN, "ZDT_REPORT_JSON": "1"},
    ).start()
    client = SseClient(server.port)
    wait_until(lambda: client.first_time(b"event: tick"), 10, "the first event", server.log)
    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    assert client.done.wait(10), server.log()
    assert server.wait_exit(10) == 0
    exited_at = time.monotonic()

    assert client.error is None, (client.error, client.raw[-200:])  # never reset
    assert client.eof_at is not None
    events = _body(client.raw).decode().split("\n\n")
    assert events[-1] == ""  # the body ends with a complete event
    assert events[-2] == "event: reconnect\nretry: 1000\ndata: {}", events[-3:]
    assert all(e.startswith("id: ") and "event: tick" in e for e in events[:-2]), events

    drain = float(STOP_BEGINS.search(server.log()).group(1))  # type: ignore[union-attr]
    stop_began_by = sigterm_at + drain  # at the latest the master saw SIGTERM then
    final_at = client.first_time(b"event: reconnect")
    ended_at = client.first_time(END_OF_CHUNKED_BODY)
    assert final_at is not None and ended_at is not None
    # Not before the drain is over: the master saw SIGTERM after the test sent it, so its
    # stop began at stop_began_by or later (less the log's rounding to 0.01 s); the stream
    # serves through the whole drain.
    assert final_at >= stop_began_by - 0.01, (final_at - sigterm_at, drain)
    assert ended_at - stop_began_by < 1.0, (final_at - stop_began_by, ended_at - stop_began_by)
    assert client.eof_at - stop_began_by < 1.5, client.eof_at - stop_began_by  # closed, too
    assert exited_at - stop_began_by < 3.0, exited_at - stop_began_by  # graceful_timeout: 10
    assert '"in_flight_at_graceful_stop": 1' in server.log()
    assert '"requests_cut": 0' in server.log()
    assert '"cut": []' in server.log()


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_request_longer_than_graceful_timeout_is_dumped_named_and_cut_as_gunicorn_does(
    gunicorn, worker_class: str
) -> None:
    require_worker_class(worker_class)
    server = gunicorn(
        config=_config(worker_class, 'graceful_timeout = 2\nloglevel = "debug"\n'), env=DRAIN
    ).start()
    with ThreadPoolExecutor(1) as pool:
        sent_at = time.monotonic()
        slow = pool.submit(request, server.port, "/work?ms=9000&secret=1", timeout=20)
        server.wait_for_log(r"\] GET /work")  # Gunicorn's pre_request debug line: it is in
        sigterm_at = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait_exit(15) == 0  # as Gunicorn: SIGKILL at graceful_timeout, exit 0
        exited_at = time.monotonic()
        with pytest.raises(OSError):  # the connection died with the worker
            slow.result(10)
    log = server.log()
    drain = float(STOP_BEGINS.search(log).group(1))  # type: ignore[union-attr]
    assert drain + 2.0 <= exited_at - sigterm_at < drain + 2.0 + 1.5, (
        drain,
        exited_at - sigterm_at,
    )

    named = re.search(
        r"graceful_timeout 2 s expires in 1\.0 s: worker (\d+) still serving GET /work for "
        r"([\d.]+) s; its Python stacks follow",
        log,
    )
    assert named, log
    assert HANDLER_FRAME.search(log[named.end() :]), log[named.end() :]

    cut = re.search(r"cut at graceful_timeout: GET /work after ([\d.]+) s \(worker (\d+)\)", log)
    assert cut, log
    assert cut.group(2) == named.group(1)
    age = float(cut.group(1))
    assert drain + 2.0 <= age <= exited_at - sent_at, (age, exited_at - sent_at)
    assert log.index(named.group(0)) < log.index(cut.group(0))
    assert "secret" not in log[log.index(named.group(0)) :]  # no query string published


def test_a_worker_killed_by_timeout_is_named_and_dumped(gunicorn) -> None:
    """Sync: a request that outlives ``timeout`` blocks the worker's heartbeat."""
    server = gunicorn(config=_config("sync", "timeout = 2\n"), env=DRAIN).start()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(request, server.port, "/work?ms=8000", timeout=20)
        line = server.wait_for_log(
            r"timeout 2 s: killed: worker \d+ still serving GET /work for [\d.]+ s; "
            r"its Python stacks follow"
        )[0]
        with contextlib.suppress(OSError):  # Gunicorn's answer (a 500 or a reset) is as before
            assert slow.result(15).status != 200
    log = server.wait_for_log(HANDLER_FRAME.pattern) and server.log()
    assert "WORKER TIMEOUT" in log  # Gunicorn's own handling goes on as before
    assert HANDLER_FRAME.search(log[log.index(line) :])
    age = float(re.search(r"for ([\d.]+) s", line).group(1))  # type: ignore[union-attr]
    assert 2.0 < age < 6.0, age
    assert server.get("/work?ms=0").status == 200  # Gunicorn replaced the worker


def test_a_request_killed_by_timeout_during_the_drain_is_in_the_termination_report(
    gunicorn,
) -> None:
    server = gunicorn(
        config=_config("sync", 'timeout = 2\nloglevel = "debug"\n'),
        env={"ZDT_DRAIN_SECONDS": "6", "ZDT_REPORT_JSON": "1"},
    ).start()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(request, server.port, "/work?ms=8000", timeout=20)
        server.wait_for_log(r"\] GET /work")  # Gunicorn's pre_request debug line: it is in
        server.signal(signal.SIGTERM)
        server.wait_for_log("SIGTERM: draining")
        server.wait_for_log(r"timeout 2 s: killed: worker \d+ still serving GET /work")
        with contextlib.suppress(OSError):
            slow.result(15)
    assert server.wait_exit(20) == 0
    log = server.log()
    assert re.search(r"cut at timeout: GET /work after [\d.]+ s \(worker \d+\)", log), log
    assert '"by": "timeout"' in log, log


def test_the_phase_outside_gunicorn_is_unmanaged_and_never_stopping() -> None:
    """In a fresh interpreter, as under `flask run`: this test process may have loaded a
    Gunicorn config (the checker tests do), which sets up the hooks' runtime."""
    code = (
        "import time\n"
        "from gunicorn_zdt import phase\n"
        "started = time.monotonic()\n"
        "assert phase.phase() == 'unmanaged', phase.phase()\n"
        "assert phase.stopping() is False\n"
        "assert phase.wait_stopping(0.1) is False\n"
        "took = time.monotonic() - started\n"
        "assert 0.1 <= took < 2, took\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_worker_slot_names_a_bounded_number_of_requests_and_counts_the_rest() -> None:
    shared = SharedState()
    entries = [shared.serving_started(3, "GET", f"/r{i}") for i in range(SERVING_ENTRIES + 2)]
    assert entries == [*range(SERVING_ENTRIES), -1, -1]
    named, untracked = shared.serving(3)
    assert [r.path for r in named] == [f"/r{i}" for i in range(SERVING_ENTRIES)]
    assert untracked == 2
    shared.serving_finished(3, 1)
    shared.serving_finished(3, -1)
    assert len(shared.serving(3)[0]) == SERVING_ENTRIES - 1
    assert shared.serving(3)[1] == 1
    assert shared.serving_started(3, "POST", "/é" * 200) == 1  # the freed entry, reused
    long = next(r for r in shared.serving(3)[0] if r.method == "POST")
    assert len(long.path.encode()) <= SERVING_PATH_MAX and long.path.startswith("/é/é")
    assert shared.serving(2) == ([], 0)  # other slots untouched


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_the_dump_signal_writes_every_stack_and_the_process_goes_on() -> None:
    done = _run(
        """
        import os, signal
        from gunicorn_zdt.runtime import stacks
        def handler_frame():
            assert stacks.arm()
            os.kill(os.getpid(), stacks.DUMP_SIGNAL)
            print("still running")
        handler_frame()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "still running\n"
    assert re.search(r'File "<string>", line \d+ in handler_frame', done.stderr), done.stderr


def test_an_apps_own_handler_for_the_dump_signal_is_left_alone() -> None:
    done = _run(
        """
        import os, signal
        from gunicorn_zdt.runtime import stacks
        signal.signal(stacks.DUMP_SIGNAL, lambda *a: print("the app's handler"))
        assert not stacks.arm()
        os.kill(os.getpid(), stacks.DUMP_SIGNAL)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the app's handler\n"
    assert "most recent call first" not in done.stderr
