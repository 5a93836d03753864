"""Readiness through a database outage and its recovery: one answer per pod, no flapping.

Issue 17. The example app, with its shipped Gunicorn config, talks to a real PostgreSQL
through a TCP proxy on 127.0.0.1 that we switch between passing traffic, hanging it
(connections accepted, nothing forwarded: a partition or a stopped server) and refusing
it (listener closed, every open connection closed: a crashed server). Each round plays
the outage seen in the field (hang, then refuse, then pass) and checks:

* while it hangs, every worker answers 503 within the check timeout plus one cache period;
* once readiness first answers 200 again, none of 1000 probes over the next 2 s, spread
  over every worker, answers 503 (a worker left with a connection broken by the outage
  used to fail once more: ready, not ready, ready; and in the first round, a worker whose
  first check's connect was black-holed by the hang published its timeouts after another
  worker's pass, and the pod took the newest publication: 300-800 of the 1000 answered
  503. Verdicts are now compared by when their check run began).

Which worker answered a probe comes from Gunicorn's access log (``%(p)s``), the probe
being tagged by its query string; the app itself is not changed for the test.

Parametrisation: the issue asks for 2 and 4 workers, gthread and sync, 5 rounds each. One
round costs ~6 s (the outage must outlast timeout + cache period, then 2 s of probes), so
the full grid would take ~2.5 min. We run the two diagonal cases, 2 gthread workers (the
case reported) and 4 sync workers (the most processes that can disagree, and no threads to
absorb a slow check), which cover every value of both factors; a quick single round of the
other diagonal (4 gthread, 2 sync) keeps the remaining pairs from going untested.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import REPO, Gunicorn, request, wait_until

pytestmark = pytest.mark.postgres

CHECK_TIMEOUT = 1.0  # ZDT_CHECK_TIMEOUT_SECONDS default, as shipped
CACHE_PERIOD = 1.0  # ZDT_CHECK_CACHE_SECONDS default, as shipped
# Probes are timed from the client; on a 2-core machine shared with PostgreSQL, the proxy
# and the workers, a probe's own scheduling can add this much.
SCHEDULING_SLACK = 0.2
BURST_PROBES = 1000
BURST_SECONDS = 2.0
ROUNDS = 5
SHIPPED_CONFIG = REPO / "example_app" / "gunicorn.conf.py"
ACCESS_FORMAT = "%(p)s %(s)s %(q)s"


class SwitchableProxy:
    """A TCP proxy on 127.0.0.1 that passes, hangs or refuses traffic to ``upstream_port``.

    * ``hang``: new connections are accepted and parked, open ones stop forwarding (data
      stays unread in the kernel): the client waits as it would on a partitioned network.
    * ``refuse``: the listener closes (connect: ECONNREFUSED) and every open connection is
      closed, both sides, as when the server process dies.
    * ``pass``: the listener is open again on the same port; parked connections proceed.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.mode = "pass"
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: list[tuple[socket.socket, socket.socket | None]] = []
        self._parked: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._listen()

    # -- switching -----------------------------------------------------------------

    def hang(self) -> float:
        with self._lock:
            self.mode = "hang"
            self._flowing.clear()
        return time.monotonic()

    def refuse(self) -> float:
        with self._lock:
            self.mode = "refuse"
            self._flowing.clear()
            listener, self._listener = self._listener, None
            pairs, self._open = self._open, []
            parked, self._parked = self._parked, []
        if listener is not None:
            _close(listener)
        for client, upstream in pairs:
            _close(client)
            if upstream is not None:
                _close(upstream)
        with self._lock:
            self._parked.extend(parked)
        return time.monotonic()

    def pass_through(self) -> float:
        with self._lock:
            self.mode = "pass"
        if self._listener is None:
            self._listen()
        self._flowing.set()
        return time.monotonic()

    def close(self) -> None:
        self.refuse()

    # -- plumbing ------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by refuse()
            with self._lock:
                if self.mode == "hang":
                    self._parked.append(client)
                    continue
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        pair = (client, upstream)
        with self._lock:
            if self.mode == "refuse":
                _close(client)
                _close(upstream)
                return
            self._open.append(pair)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple) -> None:
        while True:
            if not self._wait_flowing(pair):
                return
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if data and self._wait_flowing(pair):  # a hang that began mid-read holds it
                with contextlib.suppress(OSError):
                    dst.sendall(data)
                    continue
            for sock in pair:
                _close(sock)
            return

    def _wait_flowing(self, pair: tuple) -> bool:
        """Block while hung; False once this connection was closed by refuse()."""
        while not self._flowing.wait(0.05):
            if pair[0].fileno() == -1:
                return False
        return pair[0].fileno() != -1


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# -- probes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    tag: int
    sent: float  # monotonic
    status: int | None  # None: no answer (socket error or timeout)


class Prober:
    """Readiness probes on fresh connections, each tagged ``?probe=N`` for the access log."""

    def __init__(self, port: int, access_log: Path) -> None:
        self.port = port
        self.access_log = access_log
        self._tags = iter(range(10**9))
        self._tag_lock = threading.Lock()

    def one(self, timeout: float = 5) -> Probe:
        with self._tag_lock:
            tag = next(self._tags)
        sent = time.monotonic()
        try:
            status = request(self.port, f"/healthz/ready?probe={tag}", timeout=timeout).status
        except OSError:
            status = None
        return Probe(tag, sent, status)

    def paced(self, count: int, seconds: float, threads: int = 16) -> list[Probe]:
        """``count`` probes spread evenly over ``seconds`` (late ones go out at once)."""
        start = time.monotonic()
        interval = seconds / count
        out: list[Probe] = []

        def client(offset: int) -> None:
            for i in range(offset, count, threads):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the load, not waiting for a condition
                out.append(self.one())

        workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return sorted(out, key=lambda p: p.sent)

    def pids(self, answered: list[Probe]) -> dict[int, int]:
        """Probe tag -> pid of the worker that answered it, from the access log.

        Gunicorn writes a request's line after sending its response: waits until the lines
        of the ``answered`` probes are there.
        """

        tags = {p.tag for p in answered if p.status is not None}

        def read() -> dict[int, int] | None:
            text = self.access_log.read_text()
            found = re.findall(r"^<(\d+)> \d{3} probe=(\d+)$", text, re.M)
            pids = {int(tag): int(pid) for pid, tag in found}
            return pids if tags <= pids.keys() else None

        return wait_until(read, 5, "the access log lines of every answered probe")


# -- the app under test ------------------------------------------------------------------


def _fresh_database(postgres, name: str) -> str:
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return name


def _via(postgres, port: int, database: str) -> str:
    return f"postgresql+psycopg2://zdt@127.0.0.1:{port}/{database}"


def _example_app(gunicorn, tmp: Path, url: str, workers: int, worker_class: str) -> Gunicorn:
    """The example app under its shipped config; only workers, class and access log vary."""
    args = ["--worker-class", worker_class, "--access-logfile", str(tmp / "access.log")]
    args += ["--access-logformat", ACCESS_FORMAT]
    if worker_class == "sync":
        args += ["--threads", "1"]  # the shipped threads = 4 would make Gunicorn pick gthread
    return gunicorn(
        app="example_app.wsgi:app",
        config=SHIPPED_CONFIG.read_text(),
        hooks=False,  # the shipped config installs them itself
        # No probe listener: it would bind the config's fixed 8081 and count as a child.
        env={"DATABASE_URL": url, "WEB_CONCURRENCY": str(workers), "ZDT_PROBE_BIND": "off"},
        args=args,
        tmp=tmp,
    ).start()


def _outage_round(
    server: Gunicorn, proxy: SwitchableProxy, prober: Prober, workers: set[int]
) -> dict:
    """Hang, refuse, pass; return what the probes saw (asserted by the caller)."""
    t0 = proxy.hang()
    # Every worker must answer 503 to every probe sent from t0 + timeout + cache period on.
    bound = CHECK_TIMEOUT + CACHE_PERIOD + SCHEDULING_SLACK
    # 150/s: ~90 probes after the bound, so that each worker gets some (gthread workers
    # accept unevenly: the least busy of 4 got 8% of a burst; with 36 probes, often none).
    during = prober.paced(count=int((bound + 0.6) * 150), seconds=bound + 0.6)
    # Still hung: keep probing until every worker answered at least one late probe (the
    # kernel's accept spread can leave one out of a short window), at most 3 s more.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        answered_by = prober.pids(during)
        late_pids = {answered_by.get(p.tag) for p in during if p.sent - t0 >= bound}
        if workers <= late_pids:
            break
        during += prober.paced(count=30, seconds=0.2)
    proxy.refuse()
    time.sleep(CACHE_PERIOD + 0.2)  # the outage's refusing phase lasts one check period
    proxy.pass_through()
    first_ok = wait_until(lambda: (p := prober.one()).status == 200 and p, 15, "ready again")
    burst = prober.paced(BURST_PROBES, BURST_SECONDS)
    pids = prober.pids([*during, first_ok, *burst])
    late = [p for p in during if p.sent - t0 >= bound]
    return {
        "first_200_after_pass_s": round(first_ok.sent - t0, 2),
        "outage_late_probes": len(late),
        "outage_late_not_503": sorted({pids.get(p.tag) for p in late if p.status != 503}, key=str),
        "outage_workers_503": len({pids.get(p.tag) for p in late if p.status == 503}),
        "burst": len(burst),
        "burst_span_s": round(burst[-1].sent - burst[0].sent, 2),
        "burst_503": sum(p.status == 503 for p in burst),
        "burst_other": sum(p.status not in (200, 503) for p in burst),
        "burst_503_by_worker": dict(Counter(pids.get(p.tag) for p in burst if p.status == 503)),
        "burst_by_worker": dict(Counter(pids.get(p.tag) for p in burst)),
    }


@pytest.fixture
def proxied_db(postgres):
    proxy = SwitchableProxy(postgres.port)
    yield proxy, _via(postgres, proxy.port, _fresh_database(postgres, "zdt_recovery"))
    proxy.close()


@pytest.mark.parametrize(
    ("workers", "worker_class", "rounds"),
    [(2, "gthread", ROUNDS), (4, "sync", ROUNDS), (4, "gthread", 1), (2, "sync", 1)],
    ids=["2-gthread", "4-sync", "4-gthread-1-round", "2-sync-1-round"],
)
def test_readiness_never_flaps_after_a_recovered_outage_and_fails_in_time_during_one(
    gunicorn, tmp_path, proxied_db, workers, worker_class, rounds
) -> None:
    proxy, url = proxied_db
    server = _example_app(gunicorn, tmp_path, url, workers, worker_class)
    pids = set(server.wait_workers(workers))
    prober = Prober(server.port, tmp_path / "access.log")
    results = [_outage_round(server, proxy, prober, pids) for _ in range(rounds)]
    report = "\n".join(f"round {i + 1}: {r}" for i, r in enumerate(results))
    print(report)
    for r in results:
        assert set(r["burst_by_worker"]) == pids, report  # the burst reached every worker
        assert r["burst"] == BURST_PROBES and r["burst_other"] == 0, report
        assert r["burst_503"] == 0, report
        assert r["outage_late_not_503"] == [], report
        assert r["outage_workers_503"] == workers, report


# -- probe storm: database load --------------------------------------------------------


def _transactions(postgres, database: str) -> int:
    """Transactions PostgreSQL counted in ``database`` (each check run is two: see below)."""
    engine = create_engine(postgres.url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d"),
            {"d": database},
        ).scalar()
    engine.dispose()
    return int(row or 0)


def _backends(postgres, database: str) -> int:
    engine = create_engine(postgres.url)
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
        ).scalar()
    engine.dispose()
    return int(n or 0)


# Per worker, outside the checks: psycopg2's hstore lookup and SQLAlchemy's dialect queries
# on the first connect, the example app's schema creation (PostgreSQL's statement log: 3;
# one spare).
SETUP_TRANSACTIONS_PER_WORKER = 4
# One check run, as PostgreSQL counts it: the example engine's pool_pre_ping sends its
# SELECT 1 outside a transaction (one), then the ping's BEGIN; SELECT 1; ROLLBACK (two).
TRANSACTIONS_PER_RUN = 2


def test_probe_storm_costs_at_most_one_query_per_check_per_cache_period_per_worker(
    gunicorn, tmp_path, postgres
) -> None:
    """Counted by PostgreSQL itself: a backend flushes its counters at exit at the latest."""
    database = _fresh_database(postgres, "zdt_storm")
    workers = 4
    before = _transactions(postgres, database)
    started = time.monotonic()
    server = _example_app(
        gunicorn, tmp_path, _via(postgres, postgres.port, database), workers, "gthread"
    )
    prober = Prober(server.port, tmp_path / "access.log")
    storm = prober.paced(count=3000, seconds=3.0, threads=32)
    server.stop()
    lifetime = time.monotonic() - started
    wait_until(lambda: _backends(postgres, database) == 0, 10, "the app's backends to exit")
    queries = _transactions(postgres, database) - before
    runs_allowed = workers * (int(lifetime / CACHE_PERIOD) + 1)
    budget = runs_allowed * TRANSACTIONS_PER_RUN + workers * SETUP_TRANSACTIONS_PER_WORKER
    print(f"storm: {len(storm)} probes, lifetime {lifetime:.1f} s, {queries} transactions")
    assert Counter(p.status for p in storm) == {200: len(storm)}
    assert queries <= budget, (queries, budget, lifetime)
