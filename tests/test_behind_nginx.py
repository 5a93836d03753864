"""Zero failed requests behind a real nginx with upstream keep-alive (Debian's ``nginx``).

nginx is set up as in most deployments (``gunicorn_zdt.drill.nginx``): ``keepalive 32``,
``proxy_http_version 1.1``, ``proxy_set_header Connection ""``, default
``proxy_next_upstream`` (a failed POST is a 502, a failed GET is retried on the other pod)
and default ``max_fails=1 fail_timeout=10s``. Each test counts what the clients saw (no
retries on their side) and what nginx's access and error logs recorded: a request nginx
retried after a failed upstream attempt counts as a failure too. Between nginx and each
Gunicorn sits a relay that delays every byte, FIN and reset by 10 ms (tests/netdelay.py):
the pod network, without which the close and the request never cross on 127.0.0.1.

Time scale: nginx's upstream ``keepalive_timeout`` (60 s in production) is 1 s here, and
Gunicorn's ``keepalive`` (75 s in ``gunicorn_zdt.conf``) is 2 s: the same order, the proxy
closes first (Gunicorn's keepalive is whole seconds). The steady-state clients pause for
idle gaps around both (0.8-1.2 s and 1.8-2.2 s), one client per nginx and Gunicorn pair
so that a gap is the idle time of the connection nginx reuses. The same traffic against
the old default (Gunicorn ``keepalive 2`` behind nginx's real 60 s) fails. Propagation
delays of the rollout (1 s and 6 s after SIGTERM) are halved.
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
from tests.netdelay import DelayRelay
from tests.support import Gunicorn, require_worker_class, wait_until

NGINX_IDLE = 1.0  # nginx upstream keepalive_timeout, scaled from 60 s
KEEPALIVE = 2  # Gunicorn keepalive, scaled from 75 s
GAPS = ((0.8, 1.2), (1.8, 2.2))  # idle gaps straddling both
NETWORK_DELAY = 0.01  # one way, nginx <-> Gunicorn
LANES = 3
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


@pytest.fixture
def relay() -> Iterator[type[DelayRelay]]:
    started: list[DelayRelay] = []

    def make(target: int) -> DelayRelay:
        r = DelayRelay(target, NETWORK_DELAY)
        started.append(r)
        return r

    yield make  # type: ignore[misc]
    for r in started:
        r.close()


def _config(worker_class: str, keepalive: int, extra: str = "") -> str:
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    return f'worker_class = "{worker_class}"\n{threads}keepalive = {keepalive}\n{extra}'


def _backends(
    gunicorn, worker_class: str, n: int, db: Path, keepalive: int = KEEPALIVE, extra: str = "",
    env: dict[str, str] | None = None,
) -> list[Gunicorn]:  # fmt: skip
    env = {"DATABASE_URL": f"sqlite:///{db}", **(env or {})}
    return [
        gunicorn(config=_config(worker_class, keepalive, extra), env=env).start() for _ in range(n)
    ]


def _failures(traffic: list[GapTraffic], proxies: list[Nginx]) -> dict[str, object]:
    """Everything that went wrong, as one comparable value (empty lists: nothing did)."""
    return {
        "client": [(o.method, o.status, o.error) for t in traffic for o in t.failures()],
        "nginx_upstream": [r for p in proxies for r in p.requests() if r.upstream_failed],
        "nginx_errors": [line for p in proxies for line in p.error_lines()],
    }


NO_FAILURES = {"client": [], "nginx_upstream": [], "nginx_errors": []}


def _stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM items")}


def _run_for(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= deadline, seconds + 5, "traffic period")


def _lanes(
    gunicorn, nginx, relay, tmp_path: Path, worker_class: str, keepalive: int,
    nginx_idle: float,
) -> tuple[list[GapTraffic], list[Nginx], Path]:  # fmt: skip
    """LANES x (one client -> nginx -> 10 ms -> one Gunicorn), all writing to one database."""
    db = tmp_path / "items.db"
    traffic, proxies = [], []
    for i, backend in enumerate(
        _backends(gunicorn, worker_class, LANES, db, keepalive, "workers = 1\n")
    ):
        proxy = nginx(upstream_idle_seconds=nginx_idle)
        port = proxy.start([relay(backend.port).port])
        proxies.append(proxy)
        traffic.append(GapTraffic(port, clients=1, gap_windows=GAPS, seed=i, prefix=f"l{i}"))
    for t in traffic:
        t.start()
    return traffic, proxies, db


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_idle_gaps_never_race_when_keepalive_outlives_the_proxy(
    gunicorn, nginx, relay, tmp_path: Path, worker_class: str
) -> None:
    require_worker_class(worker_class)
    traffic, proxies, db = _lanes(
        gunicorn, nginx, relay, tmp_path, worker_class, KEEPALIVE, NGINX_IDLE
    )
    _run_for(25)
    outcomes = [o for t in traffic for o in t.stop()]
    assert len(outcomes) >= 30, len(outcomes)
    assert _failures(traffic, proxies) == NO_FAILURES
    acknowledged = {i for t in traffic for i in t.acknowledged_ids()}
    assert acknowledged and acknowledged <= _stored_ids(db)


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_the_old_default_keepalive_2_races_nginx_default_idle_timeout(
    gunicorn, nginx, relay, tmp_path: Path, worker_class: str
) -> None:
    """The negative case: Gunicorn keepalive 2 (the old ready-made value, and Gunicorn's
    own default) behind nginx's default 60 s: the same traffic fails."""
    require_worker_class(worker_class)
    traffic, proxies, _ = _lanes(gunicorn, nginx, relay, tmp_path, worker_class, KEEPALIVE, 60)
    try:
        wait_until(
            lambda: _failures(traffic, proxies)["nginx_errors"], 60, "an upstream keep-alive race"
        )
    finally:
        for t in traffic:
            t.stop()
    assert any("upstream prematurely closed" in line for line in _failures(traffic, proxies)[
        "nginx_errors"])  # fmt: skip


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_workers_recycled_by_max_requests_and_sighup_fail_no_request(
    gunicorn, nginx, relay, tmp_path: Path, worker_class: str
) -> None:
    require_worker_class(worker_class)
    db = tmp_path / "items.db"
    backends = _backends(
        gunicorn, worker_class, 2, db, extra="max_requests = 4\nmax_requests_jitter = 2\n"
    )
    proxy = nginx(upstream_idle_seconds=NGINX_IDLE)
    port = proxy.start([relay(b.port).port for b in backends])
    # Short gaps (many requests, many recycles) and long ones (connections left idle).
    traffic = GapTraffic(port, clients=8, gap_windows=((0.0, 1.5),)).start()
    _run_for(4)
    for b in backends:  # SIGHUP: new workers, the old ones stop gracefully
        b.signal(signal.SIGHUP)
    for b in backends:
        b.wait_for_log(r"Handling signal: hup")
    _run_for(4)
    backends[0].signal(signal.SIGHUP)
    backends[0].wait_for_log(r"Handling signal: hup", count=2)
    _run_for(4)
    outcomes = traffic.stop()
    assert _failures([traffic], [proxy]) == NO_FAILURES
    log = "".join(b.log() for b in backends)
    assert log.count("Autorestarting worker") >= 2, log
    assert len(outcomes) >= 20, len(outcomes)
    assert set(traffic.acknowledged_ids()) <= _stored_ids(db)


@pytest.mark.parametrize("propagation", [0.5, 3.0], ids=["propagation-1s", "propagation-6s"])
def test_rolling_replacement_behind_nginx_loses_nothing(
    gunicorn, nginx, relay, tmp_path: Path, propagation: float
) -> None:
    """Two old pods replaced by two new ones; nginx learns of each deletion ``propagation``
    after SIGTERM (an ingress controller's endpoint sync), upstream list rewritten and
    ``nginx -s reload``. The drain (1 s longer than the propagation) covers it."""
    db = tmp_path / "items.db"
    env = {"ZDT_DRAIN_SECONDS": str(propagation + 1)}
    old = _backends(gunicorn, "gthread", 2, db, env=env)
    proxy = nginx(upstream_idle_seconds=NGINX_IDLE)
    relays = {b.port: relay(b.port).port for b in old}
    port = proxy.start(list(relays.values()))
    traffic = GapTraffic(port, clients=8, gap_windows=((0.0, 1.5),)).start()
    _run_for(2)
    new = _backends(gunicorn, "gthread", 2, db, env=env)
    relays.update({b.port: relay(b.port).port for b in new})
    live = [*old, *new]
    proxy.reload([relays[b.port] for b in live])
    for pod in old:  # one at a time, as maxSurge 1 / maxUnavailable 0
        pod.signal(signal.SIGTERM)
        _run_for(propagation)
        live.remove(pod)
        proxy.reload([relays[b.port] for b in live])
        assert pod.wait_exit(30) == 0
    _run_for(2)
    outcomes = traffic.stop()
    assert len(outcomes) >= 40, len(outcomes)
    assert _failures([traffic], [proxy]) == NO_FAILURES
    acknowledged = traffic.acknowledged_ids()
    assert acknowledged and set(acknowledged) <= _stored_ids(db)
