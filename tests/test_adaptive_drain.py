"""The drain ends on evidence, and after it a late connection is refused, never reset.

Real Gunicorn masters, real signals and sockets. Times are read from the master's own
termination report (monotonic, measured inside the pod) and compared with what the test
sent; the windows are short (about 1 s) to keep the file fast.
"""

from __future__ import annotations

import contextlib
import errno
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gunicorn_zdt.core import drain
from gunicorn_zdt.core.plan import DrainPlan
from gunicorn_zdt.core.settings import SettingError
from tests.support import request, require_worker_class

WORKER_CLASSES = ["sync", "gthread", "gevent"]
WINDOW = {"ZDT_DRAIN_SECONDS": "1", "ZDT_DRAIN_QUIET_SECONDS": "1", "ZDT_DRAIN_MAX_SECONDS": "6"}
# The quiet period differs from the minimum, so a window that mixes them up shows.
EXTENDING = {
    "ZDT_DRAIN_SECONDS": "2",
    "ZDT_DRAIN_QUIET_SECONDS": "0.5",
    "ZDT_DRAIN_MAX_SECONDS": "8",
}
REPORT = re.compile(
    r"termination report: drain ([\d.]+) s \(([^)]+)\); (\d+) request\(s\) arrived while "
    r"draining, last new connection (none|[\d.]+ s) after SIGTERM; (\d+) keep-alive "
    r"connection\(s\) from before SIGTERM closed by the drain; (\d+) in flight when the "
    r"graceful stop began, (\d+) cut"
)


def _config(worker_class: str, extra: str = "") -> str:
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    return f'worker_class = "{worker_class}"\n{threads}keepalive = 1\n{extra}'


def _report(server) -> dict:
    line = server.wait_for_log(REPORT.pattern)[0]
    drain_s, reason, arrived, last, closed, in_flight, cut = REPORT.search(server.log()).groups()  # type: ignore[union-attr]
    assert line
    return {
        "drain": float(drain_s),
        "reason": reason,
        "arrived": int(arrived),
        "last": None if last == "none" else float(last.split()[0]),
        "closed": int(closed),
        "in_flight": int(in_flight),
        "cut": int(cut),
    }


def _send_until(port: int, path: str, stop_at: float, every: float = 0.15) -> list[float]:
    """Fresh connections until ``stop_at`` (monotonic); returns when each was sent."""
    sent = []
    while time.monotonic() < stop_at:
        sent.append(time.monotonic())
        assert request(port, path).status == 200
        time.sleep(every)  # pacing of the load, not synchronisation
    return sent


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_traffic_after_the_minimum_extends_the_drain_until_it_goes_quiet(
    gunicorn, worker_class: str
) -> None:
    require_worker_class(worker_class)
    server = gunicorn(config=_config(worker_class), env=EXTENDING).start()
    kept = server.connect()  # a keep-alive connection from before SIGTERM
    assert request(server.port, "/work?ms=0", conn=kept).status == 200
    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for_log("SIGTERM: draining")  # the flip happened: what we send now counts
    # Reused within keepalive (1 s): the drain closes it after this response (not sync:
    # it closes every connection itself, so http.client opened a new one).
    assert request(server.port, "/work?ms=0", conn=kept).status == 200
    kept.close()
    sent = _send_until(server.port, "/work?ms=0", sigterm_at + 3.0)
    assert server.wait_exit(20) == 0
    report = _report(server)
    last_sent = sent[-1] - sigterm_at
    assert report["reason"] == drain.QUIET
    # The master counts from its own SIGTERM, a moment after the test's clock: the last
    # arrival it saw is the last one sent (0.15 s apart; the first was ~2.8 s earlier).
    assert report["last"] is not None and abs(report["last"] - last_sent) < 0.5, (report, last_sent)
    # Ends after the quiet period (0.5 s, not the 2 s minimum) following the last arrival,
    # and not much later (a tick plus margin; without the quiet rule: the 8 s maximum).
    assert report["last"] + 0.5 <= report["drain"] < report["last"] + 0.5 + 0.7, report
    # Both counters count traffic only (probes excluded): every request sent after SIGTERM,
    # and the one keep-alive connection from before it that the drain closed.
    assert report["arrived"] == len(sent) + 1, (report, len(sent))
    assert report["closed"] == (0 if worker_class == "sync" else 1), report
    assert report["cut"] == 0


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_probes_alone_never_extend_the_drain(gunicorn, worker_class: str) -> None:
    server = gunicorn(
        config=_config(worker_class), env={**WINDOW, "ZDT_HEALTH_CHECK_PATHS": "/lb-health"}
    ).start()
    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            for path in ("/healthz/ready", "/healthz/live", "/lb-health"):
                try:
                    request(server.port, path, timeout=2)
                except OSError:
                    return  # the pod stopped listening: done
            time.sleep(0.05)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(probe)
        try:
            assert server.wait_exit(20) == 0
        finally:
            stop.set()
    report = _report(server)
    assert (report["reason"], report["last"], report["arrived"]) == (drain.QUIET, None, 0)
    assert 1.0 <= report["drain"] < 2.5, report  # the 6 s maximum if probes counted
    assert time.monotonic() - sigterm_at < 6


def test_without_traffic_the_drain_ends_at_the_minimum(gunicorn) -> None:
    server = gunicorn(config=_config("gthread"), env=WINDOW).start()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    report = _report(server)
    assert (report["reason"], report["arrived"], report["last"]) == (drain.QUIET, 0, None)
    assert 1.0 <= report["drain"] < 2.5, report  # at the minimum, far from the 6 s maximum


def test_the_maximum_caps_a_drain_that_traffic_keeps_extending(gunicorn) -> None:
    server = gunicorn(
        config=_config("gthread"),
        env={**WINDOW, "ZDT_DRAIN_MAX_SECONDS": "2.5", "ZDT_REPORT_JSON": "1"},
    ).start()
    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            try:
                request(server.port, "/work?ms=0", timeout=2)
            except OSError:
                return  # refused once the graceful stop began
            time.sleep(0.1)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(load)
        try:
            assert server.wait_exit(20) == 0
        finally:
            done.set()
    report = _report(server)
    assert report["reason"] == drain.MAXIMUM
    assert 2.5 <= report["drain"] < 2.9, report
    assert "the drain hit ZDT_DRAIN_MAX_SECONDS=2.5 with traffic still arriving" in server.log()
    assert '"drain_ended_by": "maximum reached while traffic still arrived"' in server.log()
    assert time.monotonic() - sigterm_at < 10


def test_sync_workers_all_busy_a_request_queued_during_the_drain_is_served_not_reset(
    gunicorn,
) -> None:
    """It waits in the listen backlog; the drain does not end while the backlog holds it."""
    server = gunicorn(
        config=_config("sync", 'workers = 1\nloglevel = "debug"\n'),
        env={
            "ZDT_DRAIN_SECONDS": "0.3",
            "ZDT_DRAIN_QUIET_SECONDS": "0.2",
            "ZDT_DRAIN_MAX_SECONDS": "5",
        },
    ).start()
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(request, server.port, "/work?ms=2000")
        server.wait_for_log(r"\] GET /work")  # Gunicorn's pre_request debug line: it is in
        server.signal(signal.SIGTERM)
        server.wait_for_log("SIGTERM: draining")
        queued = pool.submit(request, server.port, "/work?ms=0")
        assert busy.result(10).status == 200
        assert queued.result(10).status == 200  # served, never reset
    assert server.wait_exit(20) == 0
    report = _report(server)
    assert report["drain"] > 1.5, report  # held past the minimum by the queued connection


@pytest.mark.parametrize(
    "window",
    [
        pytest.param({"ZDT_DRAIN_MAX_SECONDS": "1.5"}, id="fixed-window"),
        pytest.param({"ZDT_GRACE_PERIOD_SECONDS": "13"}, id="default-window"),
    ],
)
def test_sync_workers_all_busy_a_request_queued_when_the_drain_ends_is_served(
    gunicorn, window: dict[str, str]
) -> None:
    """gunicorn #3397: a connection queued in the listen backlog when the drain ends was
    reset when the last worker exited. Now the workers serve the queue before they stop."""
    server = gunicorn(
        config=_config("sync", 'workers = 1\nloglevel = "debug"\ntimeout = 5\n'),
        env={"ZDT_DRAIN_SECONDS": "1.5", **window},
    ).start()
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(request, server.port, "/work?ms=4000")
        server.wait_for_log(r"\] GET /work")  # Gunicorn's pre_request debug line: it is in
        server.signal(signal.SIGTERM)
        server.wait_for_log("SIGTERM: draining")
        queued = pool.submit(request, server.port, "/work?ms=0")
        if "ZDT_DRAIN_MAX_SECONDS" in window:  # ends while the queued one still waits
            server.wait_for_log(r"1 connection\(s\) wait in the listen backlog")
        assert busy.result(10).status == 200
        assert queued.result(10).status == 200  # served, never reset
    assert server.wait_exit(20) == 0
    report = _report(server)
    assert report["cut"] == 0
    assert "Traceback" not in server.log()


def test_the_backlog_hold_ends_at_half_of_graceful_timeout_with_a_warning(gunicorn) -> None:
    """A queue the busy workers cannot reach in time does not hold the stop past its budget."""
    server = gunicorn(
        config=_config("sync", 'workers = 1\nloglevel = "debug"\ngraceful_timeout = 4\n'),
        env={"ZDT_DRAIN_SECONDS": "1", "ZDT_DRAIN_MAX_SECONDS": "1"},
    ).start()
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(request, server.port, "/work?ms=8000", timeout=20)
        server.wait_for_log(r"\] GET /work")
        sigterm_at = time.monotonic()
        server.signal(signal.SIGTERM)
        server.wait_for_log("SIGTERM: draining")
        queued = pool.submit(request, server.port, "/work?ms=0", timeout=20)
        server.wait_for_log(r"1 connection\(s\) wait in the listen backlog")
        server.wait_for_log(
            r"1 queued connection\(s\) not served within 2\.0 s \(half of graceful_timeout\)"
        )
        assert server.wait_exit(20) == 0
        exited = time.monotonic() - sigterm_at
        for f in (busy, queued):
            with contextlib.suppress(OSError):
                f.result(10)
    # drain 1 s + graceful_timeout 4 s (SIGKILL of the busy worker) + the loop's margin
    assert exited < 1 + 4 + 1.5, exited
    assert "cut at graceful_timeout: GET /work" in server.log()


def test_with_only_the_minimum_and_the_grace_period_traffic_after_the_minimum_is_served(
    gunicorn,
) -> None:
    """No ZDT_DRAIN_MAX_SECONDS: the maximum is derived (grace 14 - margin 2 - timeout 5 =
    7), graceful_timeout stays 5 = timeout, and traffic past the minimum is served."""
    server = gunicorn(
        config=_config("gthread", "timeout = 5\n"),
        env={"ZDT_DRAIN_SECONDS": "1", "ZDT_GRACE_PERIOD_SECONDS": "14"},
    ).start()
    server.wait_for_log(
        r"drain 1 s to 7 s \(quiet 2 s\), graceful_timeout 5 s, preStop 0 s, grace period "
        r"14 s \(slack 0 s\); drain maximum derived: grace period 14 - preStop 0 - margin 2 - "
        r"timeout 5"
    )
    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for_log("SIGTERM: draining")
    sent = _send_until(server.port, "/work?ms=0", sigterm_at + 3.0)  # each asserts 200
    assert server.wait_exit(20) == 0
    report = _report(server)
    assert report["reason"] == drain.QUIET
    assert report["drain"] >= 3.0, report  # past the 1 s minimum, while traffic came
    assert report["arrived"] == len(sent)


def _refused_within(port: int, seconds: float) -> float:
    started = time.monotonic()
    sock = socket.socket()
    sock.settimeout(seconds)
    try:
        code = sock.connect_ex(("127.0.0.1", port))
    finally:
        sock.close()
    took = time.monotonic() - started
    assert code == errno.ECONNREFUSED, (code, errno.errorcode.get(code))
    return took


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_connection_after_the_drain_is_refused_at_once_while_in_flight_work_finishes(
    gunicorn, worker_class: str
) -> None:
    require_worker_class(worker_class)
    server = gunicorn(
        config=_config(worker_class, 'workers = 2\nloglevel = "debug"\n'),
        env={"ZDT_DRAIN_SECONDS": "0.5", "ZDT_DRAIN_QUIET_SECONDS": "0.2"},
    ).start()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(request, server.port, "/work?ms=3000")
        server.wait_for_log(r"\] GET /work")  # Gunicorn's pre_request debug line: it is in
        server.signal(signal.SIGTERM)
        server.wait_for_log("graceful stop begins")
        # Logged right after every listening socket of the pod was shut (Gunicorn's stop()
        # runs a moment after the line above): from then on a connection is refused.
        server.wait_for_log("listeners shut: new connections are refused")
        # Refused, not dropped: a dropped SYN would wait out the 2 s connect timeout.
        assert _refused_within(server.port, 2.0) < 1.0
        assert slow.result(10).status == 200
    assert server.wait_exit(20) == 0
    assert "Exception in worker process" not in server.log()


def test_a_maximum_equal_to_the_minimum_is_a_fixed_drain_that_ignores_the_quiet_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A maximum equal to the minimum: a fixed drain, whatever the quiet period."""
    for name in ("ZDT_DRAIN_SECONDS", "ZDT_DRAIN_QUIET_SECONDS", "ZDT_DRAIN_MAX_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZDT_DRAIN_QUIET_SECONDS", "10")
    plan = DrainPlan.resolve(drain_seconds=4, drain_max_seconds=4)
    assert (plan.drain_seconds, plan.drain_cap_seconds) == (4, 4)
    monkeypatch.setenv("ZDT_DRAIN_MAX_SECONDS", "8")
    with pytest.raises(SettingError, match="ZDT_DRAIN_QUIET_SECONDS=10 > ZDT_DRAIN_MAX_SECONDS=8"):
        DrainPlan.resolve(drain_seconds=4)
    monkeypatch.setenv("ZDT_DRAIN_MAX_SECONDS", "3")
    with pytest.raises(SettingError, match="ZDT_DRAIN_SECONDS=4 > ZDT_DRAIN_MAX_SECONDS=3"):
        DrainPlan.resolve(drain_seconds=4)
