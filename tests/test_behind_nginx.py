"""Zero failed requests behind a real nginx with upstream keep-alive (Debian's ``nginx``).

nginx is set up as in most deployments (``gunicorn_zdt.drill.nginx``): ``keepalive 32``,
``proxy_http_version 1.1``, ``proxy_set_header Connection ""``, default
``proxy_next_upstream`` (a failed POST is a 502, a failed GET is retried on the other pod)
and default ``max_fails=1 fail_timeout=10s``. Each test counts what the clients saw (no
retries on their side) and what nginx's access log recorded: a request nginx retried after
a failed upstream attempt counts as a failure too.

Time scale: nginx's upstream ``keepalive_timeout`` (60 s in production) is 1 s here, and
Gunicorn's ``keepalive`` (75 s in ``gunicorn_zdt.conf``) is 2 s: the same order, the proxy
closes first (Gunicorn's keepalive is whole seconds). Idle gaps of 0.5-2.6 s straddle both.
The old default (Gunicorn ``keepalive 2`` behind nginx's real 60 s) is shown to fail the
same traffic. Propagation delays of the rollout (1 s and 6 s after SIGTERM) are halved.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gunicorn_zdt.drill.gaps import GapTraffic
from gunicorn_zdt.drill.nginx import Nginx, find_nginx
from tests.support import Gunicorn, require_worker_class, wait_until

NGINX_IDLE = 1.0  # nginx upstream keepalive_timeout, scaled from 60 s
KEEPALIVE = 2  # Gunicorn keepalive, scaled from 75 s
GAPS = (0.5, 2.6)  # idle gaps straddling both
WORKER_CLASSES = ["gthread", "gevent"]


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[type[Nginx]]:
    if find_nginx() is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    started: list[Nginx] = []

    def make(**kw):  # type: ignore[no-untyped-def]
        n = Nginx(tmp_path / f"nginx{len(started)}", **kw)
        started.append(n)
        return n

    yield make  # type: ignore[misc]
    for n in started:
        n.stop()


def _config(worker_class: str, keepalive: int, extra: str = "") -> str:
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    return f'worker_class = "{worker_class}"\n{threads}keepalive = {keepalive}\n{extra}'


def _backends(
    gunicorn, worker_class: str, n: int, db: Path, keepalive: int = KEEPALIVE, extra: str = "",
    env: dict[str, str] | None = None, hooks: bool = True,
) -> list[Gunicorn]:  # fmt: skip
    env = {"DATABASE_URL": f"sqlite:///{db}", **(env or {})}
    return [
        gunicorn(config=_config(worker_class, keepalive, extra), env=env, hooks=hooks).start()
        for _ in range(n)
    ]


def _failures(traffic: GapTraffic, proxy: Nginx) -> dict[str, object]:
    """Everything that went wrong, as one comparable value (empty lists: nothing did)."""
    return {
        "client": [(o.method, o.status, o.error) for o in traffic.failures()],
        "nginx_upstream": [r for r in proxy.requests() if r.upstream_failed],
        "nginx_errors": proxy.error_lines(),
    }


def _stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM items")}


def _run_for(traffic: GapTraffic, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= deadline, seconds + 5, "traffic period")


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_idle_gaps_never_race_when_keepalive_outlives_the_proxy(
    gunicorn, nginx, tmp_path: Path, worker_class: str
) -> None:
    require_worker_class(worker_class)
    db = tmp_path / "items.db"
    backends = _backends(gunicorn, worker_class, 2, db)
    proxy = nginx(upstream_idle_seconds=NGINX_IDLE)
    port = proxy.start([b.port for b in backends])
    traffic = GapTraffic(port, clients=6, gap_seconds=GAPS).start()
    _run_for(traffic, 12)
    outcomes = traffic.stop()
    assert len(outcomes) >= 40, len(outcomes)
    assert _failures(traffic, proxy) == {"client": [], "nginx_upstream": [], "nginx_errors": []}
    assert set(traffic.acknowledged_ids()) <= _stored_ids(db)


def test_the_old_default_keepalive_2_races_nginx_default_idle_timeout(
    gunicorn, nginx, tmp_path: Path
) -> None:
    """The negative case: Gunicorn keepalive 2 (the old ready-made value, and Gunicorn's
    own default) behind nginx's default 60 s: the same traffic fails within seconds."""
    db = tmp_path / "items.db"
    backends = _backends(gunicorn, "gthread", 2, db)
    proxy = nginx(upstream_idle_seconds=60)
    port = proxy.start([b.port for b in backends])
    traffic = GapTraffic(port, clients=6, gap_seconds=(1.5, 2.6)).start()
    try:
        wait_until(
            lambda: [r for r in proxy.requests() if r.upstream_failed],
            45,
            "an upstream keep-alive race",
        )
    finally:
        traffic.stop()
    assert proxy.error_lines(), "nginx logged no upstream failure"


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_workers_recycled_by_max_requests_and_sighup_fail_no_request(
    gunicorn, nginx, tmp_path: Path, worker_class: str
) -> None:
    require_worker_class(worker_class)
    db = tmp_path / "items.db"
    backends = _backends(
        gunicorn, worker_class, 2, db, extra="max_requests = 15\nmax_requests_jitter = 5\n"
    )
    proxy = nginx(upstream_idle_seconds=NGINX_IDLE)
    port = proxy.start([b.port for b in backends])
    # Short gaps (many requests, many recycles) and long ones (connections left idle).
    traffic = GapTraffic(port, clients=8, gap_seconds=(0.0, 1.5)).start()
    _run_for(traffic, 4)
    for b in backends:  # SIGHUP: new workers, the old ones stop gracefully
        b.signal(signal.SIGHUP)
    _run_for(traffic, 4)
    backends[0].signal(signal.SIGHUP)
    _run_for(traffic, 4)
    outcomes = traffic.stop()
    log = "".join(b.log() for b in backends)
    assert log.count("Autorestarting worker") >= 4, log
    assert log.count("Hang up") >= 3 or log.count("Handling signal: hup") >= 3, log
    assert len(outcomes) >= 60, len(outcomes)
    assert _failures(traffic, proxy) == {"client": [], "nginx_upstream": [], "nginx_errors": []}
    assert set(traffic.acknowledged_ids()) <= _stored_ids(db)


@pytest.mark.parametrize("propagation", [0.5, 3.0], ids=["propagation-1s", "propagation-6s"])
def test_rolling_replacement_behind_nginx_loses_nothing(
    gunicorn, nginx, tmp_path: Path, propagation: float
) -> None:
    """Two old pods replaced by two new ones; nginx learns of each deletion ``propagation``
    after SIGTERM (an ingress controller's endpoint sync), upstream list rewritten and
    ``nginx -s reload``. The drain (1 s longer than the propagation) covers it."""
    db = tmp_path / "items.db"
    env = {"ZDT_DRAIN_SECONDS": str(propagation + 1)}
    old = _backends(gunicorn, "gthread", 2, db, env=env)
    proxy = nginx(upstream_idle_seconds=NGINX_IDLE)
    port = proxy.start([b.port for b in old])
    traffic = GapTraffic(port, clients=8, gap_seconds=(0.0, 1.5)).start()
    _run_for(traffic, 2)
    new = _backends(gunicorn, "gthread", 2, db, env=env)
    live = [*old, *new]
    proxy.reload([b.port for b in live])
    for pod in old:  # one at a time, as maxSurge 1 / maxUnavailable 0
        pod.signal(signal.SIGTERM)
        _run_for(traffic, propagation)
        live.remove(pod)
        proxy.reload([b.port for b in live])
        assert pod.wait_exit(30) == 0
    _run_for(traffic, 2)
    outcomes = traffic.stop()
    assert len(outcomes) >= 60, len(outcomes)
    assert _failures(traffic, proxy) == {"client": [], "nginx_upstream": [], "nginx_errors": []}
    acknowledged = traffic.acknowledged_ids()
    assert acknowledged and set(acknowledged) <= _stored_ids(db)
