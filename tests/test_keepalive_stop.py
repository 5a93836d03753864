"""A long keepalive never holds a stop: idle keep-alive connections end when the worker stops.

The ready-made ``keepalive`` is 75 s (above the proxies' 60 s idle timeouts). A stopping
worker must still close its idle kept-alive connections at once (gevent: Gunicorn itself
would wait up to ``keepalive`` for each, past ``graceful_timeout``) or within Gunicorn's
2 s linger (gthread), with a clean FIN, never a reset, whether it stops for the pod's
SIGTERM (after the drain) or for ``max_requests``.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.support import require_worker_class, wait_until

KEEPALIVE = 75
GRACEFUL = 20  # well above what the stop may take: proves nothing waits for it
WORKER_CLASSES = ["gthread", "gevent"]


def _config(worker_class: str, extra: str = "") -> str:
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    return (
        f'worker_class = "{worker_class}"\n{threads}keepalive = {KEEPALIVE}\n'
        f"graceful_timeout = {GRACEFUL}\n{extra}"
    )


def _idle_keepalive_connection(port: int) -> socket.socket:
    """A connection that got one keep-alive response and now sits idle."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /work?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert b"200 OK" in head.split(b"\r\n", 1)[0], head
    assert b"connection: close" not in head.lower(), head
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    body = head.split(b"\r\n\r\n", 1)[1]
    while len(body) < length:
        body += sock.recv(4096)
    return sock


def _closed_cleanly_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server's FIN; fails on a reset or when nothing came in time."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        data = sock.recv(1)
    except TimeoutError:
        raise AssertionError(f"idle keep-alive connection still open after {seconds} s") from None
    assert data == b"", data  # a FIN: ConnectionResetError would have been raised instead
    return time.monotonic() - start


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_idle_keepalive_connections_do_not_hold_the_graceful_stop(
    gunicorn, worker_class: str
) -> None:
    require_worker_class(worker_class)
    drain = 1.0
    server = gunicorn(
        config=_config(worker_class, "workers = 2\n"), env={"ZDT_DRAIN_SECONDS": str(drain)}
    ).start()
    idle = [_idle_keepalive_connection(server.port) for _ in range(4)]

    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for_log(r"graceful stop begins")
    # Closed after the drain, well before keepalive or graceful_timeout: gthread keeps them
    # at most 2 s (Gunicorn's STOP_KEEPALIVE_LINGER), gevent closes them at once.
    for sock in idle:
        _closed_cleanly_within(sock, 5)
        sock.close()
    assert server.wait_exit(10) == 0
    took = time.monotonic() - sigterm_at
    assert drain <= took < drain + 5, (took, server.log())
    assert "Worker graceful timeout" not in server.log()


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_worker_recycled_by_max_requests_closes_its_idle_connections(
    gunicorn, worker_class: str
) -> None:
    require_worker_class(worker_class)
    server = gunicorn(config=_config(worker_class, "workers = 1\nmax_requests = 8\n")).start()
    (first,) = server.wait_workers(1)
    idle = _idle_keepalive_connection(server.port)
    # Fresh connections until the worker reaches max_requests and stops (its replacement
    # answers the rest); the idle connection must end when the old worker stops, cleanly,
    # not after keepalive or graceful_timeout.
    wait_until(
        lambda: server.get("/work?ms=0").status == 200 and first not in server.workers(),
        15,
        "the first worker recycled by max_requests",
        server.log,
    )
    _closed_cleanly_within(idle, 5)
    idle.close()
    assert "Worker graceful timeout" not in server.log()
