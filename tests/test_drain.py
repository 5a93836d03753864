"""The drain on SIGTERM, proven on real Gunicorn masters with real signals and sockets."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time

import pytest

from tests.support import (
    Response,
    children,
    request,
    require_worker_class,
    resumed_after,
    wait_until,
)

WORKER_CLASSES = ["sync", "gthread", "gevent"]


def _config(worker_class: str, extra: str = "") -> str:
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    return f'worker_class = "{worker_class}"\n{threads}keepalive = 1\n{extra}'


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_ready_is_503_on_every_worker_after_sigterm_while_traffic_is_served(
    gunicorn, worker_class: str, preload: bool
) -> None:
    require_worker_class(worker_class)
    drain = 3.0
    server = gunicorn(
        config=_config(worker_class, f"workers = 3\npreload_app = {preload}\nkeepalive = 30\n"),
        env={"ZDT_DRAIN_SECONDS": str(drain)},
    ).start()
    workers = server.wait_workers(3)
    server.answers_from_every_worker("/healthz/ready", 200, workers)
    keep_alive = server.connect()
    assert server.get("/work?ms=0", conn=keep_alive).status == 200

    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for_log(r"gunicorn-zdt: SIGTERM: draining .* for at least 3 s")
    # A response on a kept-alive connection closes it ...
    last = server.get("/work?ms=0", conn=keep_alive)
    assert last.status == 200
    if worker_class != "sync":  # sync answers Connection: close to every request anyway
        assert last.headers.get("connection") == "close"
    assert keep_alive.sock is None or keep_alive.sock.recv(1) == b""
    # ... readiness is 503 on every worker, liveness stays 200 ...
    server.answers_from_every_worker("/healthz/ready", 503, workers)
    assert server.get("/healthz/live").status == 200
    # ... and new connections are still accepted and served.
    assert server.get("/work?ms=0").status == 200

    assert server.wait_exit(30) == 0
    took = time.monotonic() - sigterm_at
    assert drain <= took < drain + 10, took
    server.wait_for_log(
        r"gunicorn-zdt: drain ended after [\d.]+ s \(minimum reached and quiet\); graceful stop begins"
    )


def test_in_flight_request_finishes_after_drain_and_then_new_connections_are_refused(
    gunicorn,
) -> None:
    server = gunicorn(config=_config("gthread"), env={"ZDT_DRAIN_SECONDS": "1"}).start()
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 1 s")
    slow: list[Response] = []
    t = threading.Thread(target=lambda: slow.append(server.get("/work?ms=2500")))
    t.start()
    server.wait_for_log(r"graceful stop begins")

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except (TimeoutError, ConnectionResetError):  # SYN dropped by the backlog hold, or
            return False  # the handshake met the listener's shutdown: not refused yet
        return False

    wait_until(refused, 5, "listeners closed after the drain", server.log)
    t.join(15)
    assert slow and slow[0].status == 200, server.log()
    assert server.wait_exit(15) == 0


def test_second_sigterm_ends_the_drain_at_once(gunicorn) -> None:
    server = gunicorn(config=_config("sync"), env={"ZDT_DRAIN_SECONDS": "60"}).start()
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 60 s")
    assert server.get("/healthz/ready").status == 503
    second = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0
    assert time.monotonic() - second < 5
    assert "s (second signal); graceful stop begins" in server.log()


def test_sigint_during_drain_is_gunicorns_quick_shutdown(gunicorn) -> None:
    server = gunicorn(config=_config("gthread"), env={"ZDT_DRAIN_SECONDS": "60"}).start()
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 60 s")
    started = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) == 0
    assert time.monotonic() - started < 5
    assert "graceful stop begins" not in server.log()


def test_drain_zero_is_plain_gunicorn_graceful_stop(gunicorn) -> None:
    server = gunicorn(config=_config("sync"), env={"ZDT_DRAIN_SECONDS": "0"}).start()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0
    assert "s (drain off: its maximum is 0); graceful stop begins" in server.log()


def test_worker_killed_during_drain_is_replaced_and_reports_draining(gunicorn) -> None:
    server = gunicorn(config=_config("sync"), env={"ZDT_DRAIN_SECONDS": "30"}).start()
    old = server.wait_workers(2)
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 30 s")
    victim = old[0]
    os.kill(victim, signal.SIGKILL)
    now = wait_until(
        lambda: w if len(w := server.workers()) == 2 and victim not in w else [],
        15,
        "a replacement worker",
        server.log,
    )
    (newborn,) = set(now) - set(old)
    server.answers_from_every_worker("/healthz/ready", 503, [newborn, old[1]])


def test_workers_recycled_by_max_requests_during_drain_report_draining(gunicorn) -> None:
    server = gunicorn(
        config=_config("sync", "max_requests = 3\n"), env={"ZDT_DRAIN_SECONDS": "30"}
    ).start()
    first = set(server.wait_workers(2))
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 30 s")
    seen: set[int] = set()

    def recycled() -> bool:
        r = server.get("/healthz/ready")
        assert r.status == 503, server.log()
        seen.add(int(r.headers["x-worker-pid"]))
        return bool(seen - first)

    wait_until(recycled, 20, "an answer from a worker born during the drain", server.log)


def test_hung_worker_is_still_killed_on_timeout_during_drain(gunicorn) -> None:
    server = gunicorn(
        config=_config("sync", "timeout = 2\ngraceful_timeout = 2\n"),
        env={"ZDT_DRAIN_SECONDS": "30"},
    ).start()
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 30 s")
    old = set(server.wait_workers(2))
    # The worker is aborted under the request: an error page or a dropped connection.
    with contextlib.suppress(OSError):
        assert server.get("/work?ms=9000", timeout=15).status == 500
    server.wait_for_log(r"WORKER TIMEOUT")
    wait_until(lambda: len(set(server.workers()) - old) == 1, 15, "a replacement", server.log)
    assert server.get("/healthz/ready").status == 503


def _wait_replaced_by_reload(server, old: set[int]) -> None:
    def replaced() -> bool:
        now = set(server.workers())
        return len(now) == 2 and not (now & old)

    wait_until(replaced, 20, "workers replaced by SIGHUP", server.log)


def test_sighup_reload_keeps_ready_and_sigterm_still_drains(gunicorn) -> None:
    server = gunicorn(config=_config("gthread"), env={"ZDT_DRAIN_SECONDS": "30"}).start()
    old = set(server.wait_workers(2))
    server.signal(signal.SIGHUP)
    _wait_replaced_by_reload(server, old)
    reloaded = server.wait_workers(2)
    server.answers_from_every_worker("/healthz/ready", 200, reloaded)
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 30 s")
    server.answers_from_every_worker("/healthz/ready", 503, reloaded)


def test_sighup_during_drain_does_not_undo_it(gunicorn) -> None:
    server = gunicorn(config=_config("gthread"), env={"ZDT_DRAIN_SECONDS": "30"}).start()
    old = set(server.wait_workers(2))
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 30 s")
    server.signal(signal.SIGHUP)
    _wait_replaced_by_reload(server, old)
    server.answers_from_every_worker("/healthz/ready", 503, server.wait_workers(2))
    server.signal(signal.SIGTERM)
    assert server.wait_exit(15) == 0


def test_usr2_reexec_starts_a_new_master_that_is_ready(gunicorn, tmp_path) -> None:
    pidfile = tmp_path / "master.pid"
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        probe_port = free.getsockname()[1]
    server = gunicorn(
        config=_config("sync", f"pidfile = {str(pidfile)!r}\n"),
        env={"ZDT_DRAIN_SECONDS": "1", "ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}"},
    ).start()
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "pidfile")
    server.signal(signal.SIGUSR2)

    new_pidfile = tmp_path / "master.pid.2"  # Gunicorn's name for it until promotion

    def new_master() -> int:
        text = new_pidfile.read_text().strip() if new_pidfile.exists() else ""
        return int(text) if text.isdigit() and int(text) != server.pid else 0

    child = wait_until(new_master, 20, "a new master from USR2", server.log)
    server.wait_for_log(r"Booting worker", count=4)
    # The new master is a child of the old one, beside its workers and probe listener.
    listeners = server.wait_for_log(r"probe listener at \S+ \(pid (\d+)\)", count=2)
    old_workers = [pid for pid in server.wait_workers(4) if pid not in (child, int(listeners[0]))]
    new_workers = wait_until(
        lambda: w if len(w := [p for p in children(child) if p != int(listeners[1])]) == 2 else [],
        15,
        "the new master's workers",
    )
    # The new generation is not ready until its first checks ran: wait for that on its own
    # (the old workers paused, so only the new ones accept) ...
    for pid in old_workers:
        os.kill(pid, signal.SIGSTOP)
    with resumed_after(old_workers):
        server.wait_ready()
    # ... then both generations answer ready on every worker; nothing flipped.
    server.answers_from_every_worker("/healthz/ready", 200, old_workers + new_workers)
    # Retire the old generation as an operator would: the new one keeps serving.
    server.signal(signal.SIGTERM)
    assert server.wait_exit(30) == 0
    os.kill(child, 0)  # still alive
    assert request(server.port, "/healthz/ready").status == 200
    # The new master took over the probe port its predecessor listened on (SO_REUSEPORT
    # for a USR2 successor only) and answers it alone now.
    assert len(re.findall(rf"probe listener at http://127.0.0.1:{probe_port}/", server.log())) == 2
    assert request(probe_port, "/healthz/ready").status == 200
    os.kill(child, signal.SIGINT)


def _raw_exchange(sock: socket.socket) -> tuple[bytes, bytes]:
    """One GET /work?ms=0 on a raw socket: (status line and headers, body); b"" if closed."""
    sock.sendall(b"GET /work?ms=0 HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(
        line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_keep_alive_connection_is_closed_by_the_server_after_its_response_in_the_drain(
    gunicorn, worker_class: str
) -> None:
    """On the wire, not through http.client (which drops a socket itself on Connection: close)."""
    require_worker_class(worker_class)
    server = gunicorn(
        config=_config(worker_class, "workers = 1\nkeepalive = 30\n"),
        env={"ZDT_DRAIN_SECONDS": "30"},
    ).start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with sock:
        head, _ = _raw_exchange(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        if worker_class != "sync":  # keep-alive works before the drain: a second request
            head, _ = _raw_exchange(sock)
            assert head.startswith(b"HTTP/1.1 200"), head
        else:  # sync closes every connection: nothing to keep
            sock.close()
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        server.signal(signal.SIGTERM)
        server.wait_for_log(r"gunicorn-zdt: SIGTERM: draining")
        head, _ = _raw_exchange(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"connection: close" in head.lower(), head
        # The server closed its end after the response: EOF, and a second request fails.
        assert sock.recv(1) == b""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            head, _ = _raw_exchange(sock)
            assert head == b"", head
