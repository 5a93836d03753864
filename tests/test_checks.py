"""The check engine: single-flight, cache, timeouts without signals, no leaks, real databases."""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event

from gunicorn_zdt.checks import MAX_RUNS_IN_FLIGHT, CheckRegistry, sqlalchemy_ping
from gunicorn_zdt.core import settings
from tests.support import TcpServer, wait_until


def test_concurrent_probes_share_one_run_of_each_check() -> None:
    calls = []
    registry = CheckRegistry(default_timeout=2, cache_seconds=0)
    registry.add("slow", lambda: calls.append(1) or time.sleep(0.3))
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: registry.run(["slow"]), range(50)))
    assert all(r[0].ok for r in results)
    assert len(calls) <= 2  # one run; a second only if a probe arrived after the first ended


def test_result_is_reused_within_the_cache_period_then_refreshed() -> None:
    registry = CheckRegistry(default_timeout=1, cache_seconds=0.3)
    check = registry.add("db", lambda: None)
    for _ in range(20):
        registry.run(["db"])
    assert check.runs == 1
    wait_until(lambda: registry.run(["db"]) and check.runs == 2, 2, "a refresh after 0.3 s")


def test_checks_run_concurrently_so_a_probe_costs_the_slowest_not_the_sum() -> None:
    # Each check passes only once all three are running at the same moment: run one after
    # another, the first would wait out the barrier and fail. No clock involved.
    together = threading.Barrier(3)
    registry = CheckRegistry(default_timeout=10, cache_seconds=0)
    for name in ("a", "b", "c"):
        registry.add(name, lambda: together.wait(5))
    assert [r.ok for r in registry.run(["a", "b", "c"])] == [True, True, True]


def test_hung_check_fails_within_its_timeout_every_time_and_holds_bounded_threads() -> None:
    release = threading.Event()
    registry = CheckRegistry(default_timeout=0.2, cache_seconds=0)
    registry.add("hung", release.wait)
    before = threading.active_count()
    try:
        for _ in range(30):
            started = time.monotonic()
            (result,) = registry.run(["hung"])
            assert not result.ok and result.reason.startswith("timed out after 0.2 s")
            # The check hangs until the test ends: any bound proves the probe did not wait
            # on it; 1 s over the timeout is margin for a busy machine.
            assert time.monotonic() - started < 0.2 + 1.0
        # the stuck runs: one replacement per timeout, at most MAX_RUNS_IN_FLIGHT
        assert threading.active_count() <= before + MAX_RUNS_IN_FLIGHT
    finally:
        release.set()


def test_check_returning_false_or_raising_fails_with_a_reason() -> None:
    registry = CheckRegistry(default_timeout=1, cache_seconds=0)
    registry.add("false", lambda: False)
    registry.add("boom", lambda: 1 / 0)
    results = {r.name: r.reason for r in registry.run(["false", "boom"])}
    assert results == {"false": "returned False", "boom": "ZeroDivisionError: division by zero"}


@pytest.mark.parametrize(
    ("name", "timeout", "message"),
    [
        ("has space", None, "check name 'has space' must be letters, digits, '-' or '_'"),
        ("ok", 0, "check 'ok': timeout must be > 0 seconds, got 0"),
    ],
)
def test_bad_registrations_are_refused(name: str, timeout: float | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CheckRegistry(1, 1).add(name, lambda: None, timeout)


def test_duplicate_check_name_is_refused() -> None:
    registry = CheckRegistry(1, 1)
    registry.add("db", lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("db", lambda: None)


def _sqlite_engine_with_sleep(path: Path):
    engine = create_engine(f"sqlite:///{path}", pool_size=3, max_overflow=0, pool_timeout=5)

    @event.listens_for(engine, "connect")
    def _add_sleep(dbapi_conn, _record):  # a real slow query: SELECT sleep_ms(300)
        dbapi_conn.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000))

    return engine


def test_sqlalchemy_ping_returns_every_connection_after_errors_and_timeouts(tmp_path) -> None:
    engine = _sqlite_engine_with_sleep(tmp_path / "db.sqlite")
    registry = CheckRegistry(default_timeout=0.05, cache_seconds=0)
    registry.add("broken", sqlalchemy_ping(engine, "SELECT * FROM no_such_table"))
    registry.add("slow", sqlalchemy_ping(engine, "SELECT sleep_ms(80)"))
    registry.add("ok", sqlalchemy_ping(engine))
    outcomes = {"broken": 0, "slow": 0, "ok": 0}
    for _ in range(300):
        for r in registry.run(["broken", "slow", "ok"]):
            outcomes[r.name] += r.ok
    assert outcomes["broken"] == 0 and outcomes["slow"] < 300 and outcomes["ok"] > 0
    wait_until(lambda: engine.pool.checkedout() == 0, 5, "every connection back in the pool")


def test_flask_sqlalchemy_db_object_is_accepted_and_runs_in_the_app_context(tmp_path) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from gunicorn_zdt.probes import Probes

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'x.db'}"
    db = SQLAlchemy(app)
    probes = Probes(app)
    probes.add_check("db", sqlalchemy_ping(db))  # db.engine needs an app context
    r = app.test_client().get("/healthz/ready?verbose")
    assert (r.status_code, r.json["checks"]["db"]["status"]) == (200, "ok")


def _thread_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def test_hung_database_makes_readiness_503_within_the_timeout_and_threads_stay_bounded(
    gunicorn,
) -> None:
    silent = TcpServer()  # accepts, never answers: a hung database
    try:
        server = gunicorn(
            config='worker_class = "gthread"\nthreads = 4\nworkers = 1\n',
            env={
                "DATABASE_URL": f"postgresql+psycopg2://zdt@127.0.0.1:{silent.port}/db",
                "ZDT_CHECK_TIMEOUT_SECONDS": "0.5",
            },
        ).start(wait_ready=False)
        server.wait_listening()
        (worker,) = server.wait_workers(1)
        assert server.get("/healthz/live").status == 200
        # gthread starts its 4 request threads on demand: start them all before counting.
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: server.get("/work?ms=200").status, range(8))) == {200}
        failed = {"status": "failed", "failed": ["database"]}
        wait_until(lambda: server.get("/healthz/ready").json() == failed, 5, "first verdict")
        counts = []
        for _ in range(15):
            started = time.monotonic()
            r = server.get("/healthz/ready")
            assert r.status == 503 and r.json() == {"status": "failed", "failed": ["database"]}
            assert time.monotonic() - started < 1.5
            counts.append(_thread_count(worker))
        assert max(counts) - min(counts) <= 1, counts  # no new stuck thread per probe
        assert server.get("/healthz/live").status == 200
    finally:
        silent.close()


@pytest.mark.postgres
def test_database_down_then_back_flips_readiness_and_never_liveness(gunicorn, postgres) -> None:
    server = gunicorn(
        config='worker_class = "gthread"\nthreads = 4\nworkers = 1\n',
        env={"DATABASE_URL": postgres.url, "ZDT_CHECK_CACHE_SECONDS": "1"},
    ).start()
    try:
        postgres.stop()
        wait_until(lambda: server.get("/healthz/ready").status == 503, 5, "503 with the DB down")
        assert server.get("/healthz/live").status == 200
    finally:
        postgres.start()
    back = time.monotonic()
    wait_until(lambda: server.get("/healthz/ready").status == 200, 5, "200 with the DB back")
    assert time.monotonic() - back < 3  # one cache period plus the ping


@pytest.mark.postgres
def test_postgres_lock_holding_the_ping_makes_readiness_fail_in_time(tmp_path, postgres) -> None:
    """A real hang inside PostgreSQL: the ping waits on a table lock another session holds."""
    engine = create_engine(postgres.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS locked (x int)")
    holder = engine.connect()
    holder.exec_driver_sql("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
    registry = CheckRegistry(default_timeout=0.3, cache_seconds=0)
    registry.add("db", sqlalchemy_ping(engine, "SELECT count(*) FROM locked"))
    try:
        for _ in range(5):
            started = time.monotonic()
            (r,) = registry.run(["db"])
            # The lock is held until the test ends: 1 s over the timeout is margin only.
            assert not r.ok and time.monotonic() - started < 0.3 + 1.0
    finally:
        holder.rollback()
        holder.close()
    wait_until(lambda: registry.run(["db"])[0].ok, 3, "the ping to pass once the lock is gone")
    wait_until(lambda: engine.pool.checkedout() == 0, 3, "every connection back in the pool")
    engine.dispose()


def test_sigalrm_is_not_used_by_checks() -> None:
    """Checks run in threads: they must work where signal.alarm cannot (any non-main thread)."""
    registry = CheckRegistry(default_timeout=0.5, cache_seconds=0)
    registry.add("x", lambda: None)
    before = signal.getsignal(signal.SIGALRM)
    out: list = []
    t = threading.Thread(target=lambda: out.extend(registry.run(["x"])))
    t.start()
    t.join(2)
    assert out and out[0].ok and signal.getsignal(signal.SIGALRM) == before


def test_probe_burst_costs_at_most_one_query_per_cache_period_per_worker(
    gunicorn, tmp_path
) -> None:
    count = tmp_path / "queries"
    server = gunicorn(
        app="benchmarks.storm_app:app",
        config='worker_class = "gthread"\nthreads = 4\nworkers = 2\n',
        env={
            "STORM_MODE": "zdt",
            "STORM_COUNT_FILE": str(count),
            "STORM_DB": str(tmp_path / "storm.db"),
            "ZDT_CHECK_CACHE_SECONDS": "1",
        },
    ).start()
    before = count.stat().st_size
    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda _: server.get("/healthz/ready").status, range(400)))
    elapsed = time.monotonic() - started
    queries = count.stat().st_size - before
    assert statuses == [200] * 400
    # Each of the 2 workers runs the check at most once per started cache period.
    assert queries <= 2 * (int(elapsed / 1.0) + 1), (queries, elapsed)


# -- hysteresis, late results, and the ping after a recovered outage -------------------


def _scripted(outcomes: list[bool]):
    """A check whose attempts pass or fail in the given order (then keep the last)."""
    calls: list[bool] = []

    def check() -> bool:
        ok = outcomes[min(len(calls), len(outcomes) - 1)]
        calls.append(ok)
        if not ok:
            raise ConnectionError("refused")
        return True

    return check, calls


@pytest.mark.parametrize(
    ("threshold", "outcomes", "ok", "attempts"),
    [
        (2, [True], True, 1),
        (2, [False, True], True, 2),  # one failure is absorbed: retried at once
        (2, [False, False], False, 2),
        (1, [False, True], False, 1),  # threshold 1: no hysteresis
        (3, [False, False, True], True, 3),
        (3, [False, False, False], False, 3),
    ],
)
def test_a_failure_counts_after_threshold_consecutive_attempts_in_one_run(
    threshold: int, outcomes: list[bool], ok: bool, attempts: int
) -> None:
    func, calls = _scripted(outcomes)
    registry = CheckRegistry(default_timeout=1, cache_seconds=0, failure_threshold=threshold)
    registry.add("dep", func)
    (result,) = registry.run(["dep"])
    assert (result.ok, len(calls)) == (ok, attempts)


def test_a_confirmed_failure_takes_one_attempt_per_run_and_one_pass_clears_it() -> None:
    func, calls = _scripted([False, False, False, True])
    registry = CheckRegistry(default_timeout=1, cache_seconds=0, failure_threshold=2)
    registry.add("dep", func)
    assert [registry.run(["dep"])[0].ok for _ in range(3)] == [False, False, True]
    assert len(calls) == 4  # 2 to confirm, 1 still failing, 1 passing


def test_refused_dependency_fails_within_the_timeout_despite_hysteresis() -> None:
    registry = CheckRegistry(default_timeout=2, cache_seconds=0, failure_threshold=5)
    func, calls = _scripted([False])
    registry.add("dep", func)
    started = time.monotonic()
    (result,) = registry.run(["dep"])
    assert not result.ok and result.reason == "ConnectionError: refused"
    assert len(calls) == 5  # the confirming attempts are made at once, no pause between
    assert time.monotonic() - started < 2


def test_a_run_stuck_past_its_deadline_does_not_keep_the_check_failing() -> None:
    """A connect black-holed during an outage ends only at its own timeout, after recovery."""
    release = threading.Event()
    calls = []

    def dep() -> None:
        calls.append(1)
        if len(calls) == 1:  # the first attempt hangs, then fails late
            release.wait(5)
            raise ConnectionError("timeout expired")

    registry = CheckRegistry(default_timeout=0.2, cache_seconds=10, failure_threshold=1)
    check = registry.add("dep", dep)
    (first,) = registry.run(["dep"])
    assert not first.ok and first.reason.startswith("timed out after 0.2 s")
    (second,) = registry.run(["dep"])  # a replacement run, not the stuck one again
    assert second.ok and check.runs == 2
    release.set()  # the stuck run now fails: news from the past, it must not win
    wait_until(lambda: not check._in_flight, 2, "the stuck run to end")
    assert registry.run(["dep"])[0].ok and check.runs == 2  # the pass stays cached


def test_every_result_says_when_its_run_began_a_timeout_and_a_cached_pass_too() -> None:
    """Workers' results are merged by it (issue 17): a run's late answer is old news."""
    release = threading.Event()
    registry = CheckRegistry(default_timeout=0.2, cache_seconds=10, failure_threshold=1)
    registry.add("dep", lambda: release.wait(5))
    before = time.monotonic()
    (timed_out,) = registry.run(["dep"])
    assert not timed_out.ok and timed_out.started is not None
    assert before <= timed_out.started <= before + 0.1  # the stuck run's start, not now
    release.set()
    (passed,) = registry.run(["dep"])  # the replacement run
    assert passed.ok and passed.started is not None and passed.started > timed_out.started
    (cached,) = registry.run(["dep"])
    assert cached.started == passed.started  # reusing a result does not make it newer


def test_a_timeout_behind_a_stuck_run_dates_from_the_stuck_run_not_from_its_own_start() -> None:
    """Issue 17: a worker's first connect is black-holed by an outage and holds a lock; its
    later runs wait behind it and time out after the dependency is back. They carry the
    stuck run's start: another worker's run begun after the recovery must beat them."""
    lock = threading.Lock()
    release = threading.Event()
    holding = threading.Event()

    def dep() -> None:
        with lock:  # like a schema set-up or a single pool slot
            if not holding.is_set():
                holding.set()
                release.wait(5)

    registry = CheckRegistry(default_timeout=0.2, cache_seconds=0, failure_threshold=1)
    registry.add("dep", dep)
    (stuck,) = registry.run(["dep"])
    (behind,) = registry.run(["dep"])  # a replacement run, waiting on the lock
    assert not stuck.ok and not behind.ok
    assert stuck.started is not None and behind.started == stuck.started
    release.set()
    (after,) = registry.run(["dep"])
    assert after.ok and after.started is not None and after.started > stuck.started
    lock.acquire()  # a new hang after a result: dated from the run that hangs now
    try:
        (again,) = registry.run(["dep"])
        assert not again.ok and again.started is not None and again.started > after.started
    finally:
        lock.release()


def test_a_late_failure_is_not_cached() -> None:
    release = threading.Event()
    func, calls = _scripted([False, True])

    def dep() -> None:
        if not calls:
            release.wait(5)
        func()

    registry = CheckRegistry(default_timeout=0.2, cache_seconds=10, failure_threshold=1)
    check = registry.add("dep", dep)
    (first,) = registry.run(["dep"])
    assert not first.ok
    release.set()
    wait_until(lambda: not check._in_flight, 2, "the late run to end")
    (after,) = registry.run(["dep"])  # a new run at once, although the cache is 10 s
    assert after.ok and check.runs == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "ZDT_CHECK_FAILURE_THRESHOLD='0' must be a whole number from 1 to 5"),
        ("6", "ZDT_CHECK_FAILURE_THRESHOLD='6' must be a whole number from 1 to 5"),
        ("2.5", "ZDT_CHECK_FAILURE_THRESHOLD='2.5' must be a whole number from 1 to 5"),
        ("", "ZDT_CHECK_FAILURE_THRESHOLD='' must be a whole number from 1 to 5"),
    ],
)
def test_bad_failure_threshold_is_refused_in_one_line(raw: str, message: str) -> None:
    name = "ZDT_CHECK_FAILURE_THRESHOLD"
    with pytest.raises(settings.SettingError, match=message):
        settings.resolve(name, environ={name: raw})
    assert settings.resolve(name, environ={name: " 3 "}) == 3
    assert settings.resolve(name, environ={}) == 2


# -- SQLite: the ping reads the file ----------------------------------------------------


def _delete(path: Path) -> None:
    path.unlink()
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)


def _directory(path: Path) -> None:
    _delete(path)
    path.mkdir()


def _garbage(path: Path) -> None:
    _delete(path)
    path.write_bytes(b"not a database at all, just text")


def _unreadable(path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    path.chmod(0)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_delete, r"FileNotFoundError: SQLite database file .*db\.sqlite is gone"),
        (_directory, r"OSError: SQLite database file .*db\.sqlite cannot be read: Is a dir"),
        (_garbage, r"ValueError: .*db\.sqlite is not a SQLite database \(it starts with b'not"),
        pytest.param(
            _unreadable,
            r"OSError: SQLite database file .*cannot be read: Permission denied",
            marks=pytest.mark.may_skip_in_ci,  # CI runs as root, which reads any file
        ),
    ],
    ids=["deleted", "a-directory", "not-a-database", "unreadable"],
)
def test_sqlite_ping_fails_when_the_file_is_gone_or_unreadable_though_the_pool_still_answers(
    tmp_path: Path, damage, reason: str
) -> None:
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x int)")
    registry = CheckRegistry(default_timeout=1, cache_seconds=0)
    registry.add("db", sqlalchemy_ping(engine))
    assert registry.run(["db"])[0].ok
    damage(path)
    with engine.connect() as conn:  # the pooled connection does not notice
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    (result,) = registry.run(["db"])
    assert not result.ok
    assert re.fullmatch(reason + ".*", result.reason), result.reason
    engine.dispose()


def test_sqlite_ping_passes_on_a_new_empty_file_and_skips_memory(tmp_path: Path) -> None:
    empty = tmp_path / "new.sqlite"
    empty.touch()  # SQLite writes its header on the first write
    for url in (f"sqlite:///{empty}", "sqlite://", "sqlite:///:memory:"):
        assert sqlalchemy_ping(create_engine(url))() is None, url


@pytest.mark.postgres
def test_ping_survives_a_pooled_connection_dropped_by_the_server(postgres) -> None:
    """Without pre-ping, a backend killed under the pool: invalidate, retry once, pass."""
    engine = create_engine(postgres.url, pool_size=1, max_overflow=0)
    ping = sqlalchemy_ping(engine)
    registry = CheckRegistry(default_timeout=2, cache_seconds=0, failure_threshold=1)
    registry.add("db", ping)  # no hysteresis: the ping alone must cope
    assert registry.run(["db"])[0].ok
    with engine.connect() as conn:
        pooled_backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = create_engine(postgres.url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pooled_backend})")
    admin.dispose()
    (result,) = registry.run(["db"])
    assert result.ok, result.reason
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pooled_backend
    engine.dispose()
