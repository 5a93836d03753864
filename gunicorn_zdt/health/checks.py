"""Readiness and startup checks: bounded, cached, single-flight, no signals.

Why each property matters:

* **Timeout without signals.** ``signal.alarm`` only works in the main thread; a check
  runs in a thread of its own and the probe waits for it at most ``timeout`` seconds.
* **Single-flight.** At most one run of a check is in flight per worker: concurrent
  probes wait for the same run, so a probe storm costs one query per check per cache
  period. A run still going past its deadline (a connection black-holed until its own
  connect timeout, or for good) is left to finish and a replacement run may start, so a
  stuck run cannot keep the check failing after the dependency is back; a check that hangs
  forever holds at most ``MAX_RUNS_IN_FLIGHT`` threads (one more per timeout), never one
  per probe.
* **Short cache.** A result is reused for ``cache_seconds``; the drain flip never goes
  through here, so it is never cached. A failure that arrives after its run's deadline
  is news from the outage, not about now: it is kept, never cached.
* **Hysteresis.** A failure counts only after ``failure_threshold`` consecutive failed
  attempts (default 2); the confirming attempts are made at once, in the same run and
  within its timeout, so an outage is still reported within the timeout plus one cache
  period (a second *run* would come a cache period later). A run that times out fails
  at once: the probe cannot wait longer. One passing attempt clears the failure.
* **Concurrent.** Several checks run at once, so a probe takes as long as the slowest
  timeout, not their sum.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..core import settings

log = logging.getLogger("gunicorn_zdt.checks")

CheckFunc = Callable[[], Any]
"""A check passes when it returns anything but ``False`` and raises nothing."""

#: A failure reason is logged at most once per check per this many seconds.
LOG_EVERY_SECONDS = 10.0
#: Runs of one check in flight at once: the live one plus those left behind past their
#: deadline. A run stuck in a black-holed connect ends at the client's own connect timeout
#: (5 s in the example app); one replacement starts per check timeout, so with up to
#: timeout x (this - 1) of client timeout a stuck run never delays the answer after recovery.
MAX_RUNS_IN_FLIGHT = 6
DEFAULT_FAILURE_THRESHOLD: int = settings.BY_NAME["ZDT_CHECK_FAILURE_THRESHOLD"].default


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    seconds: float
    reason: str | None = None
    #: ``time.monotonic()`` when the run that produced this result began: how old its news
    #: is. Workers' results are compared by it (a late answer of an old run is old news).
    #: A timeout while older runs begun since the last result still hang carries the
    #: oldest one's start: this worker has had no answer since then, and the new run may
    #: only be waiting behind the old one (a lock, a pool slot), not news about now.
    started: float | None = None


@dataclass(frozen=True)
class _Run:
    done: threading.Event
    started: float
    deadline: float


class Check:
    """One named check with its own timeout and a single-flight, cached runner."""

    def __init__(
        self,
        name: str,
        func: CheckFunc,
        timeout: float,
        cache_seconds: float,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
    ) -> None:
        self.name = name
        self.func = func
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.failure_threshold = max(1, failure_threshold)
        self._lock = threading.Lock()
        self._in_flight: list[_Run] = []  # oldest first; the last one is the live run
        self._result: CheckResult | None = None
        self._result_started = float("-inf")  # when the run that produced _result began
        self._fresh_until = float("-inf")
        self._failures = 0  # consecutive failed attempts, across runs
        self._logged: tuple[str | None, float] = (None, float("-inf"))
        self.runs = 0  # how many runs started (for tests and benchmarks)
        self.attempts = 0  # how many times func was called

    def begin(self) -> CheckResult | tuple[threading.Event, float]:
        """A fresh cached result, or (the run in flight, its deadline), starting one if needed."""
        with self._lock:  # never yield (gevent) or start a thread while holding it
            now = time.monotonic()
            if self._result is not None and now < self._fresh_until:
                return self._result
            live = self._in_flight[-1] if self._in_flight else None
            start = live is None or (
                now >= live.deadline and len(self._in_flight) < MAX_RUNS_IN_FLIGHT
            )
            if start:
                live = _Run(threading.Event(), now, now + self.timeout)
                self._in_flight.append(live)
                self.runs += 1
        assert live is not None
        if start:
            thread = threading.Thread(target=self._run, args=(live,), name=f"zdt-check-{self.name}")
            thread.daemon = True
            thread.start()
        return live.done, live.deadline

    def finish(self, pending: CheckResult | tuple[threading.Event, float]) -> CheckResult:
        """Wait for the run ``begin`` joined, at most until its deadline."""
        if isinstance(pending, CheckResult):
            return pending
        done, deadline = pending
        if done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                result = self._result  # this run's, or a newer one's
            assert result is not None
            return result
        started = deadline - self.timeout
        with self._lock:  # unanswered since the oldest run begun after the last result
            since = min(
                (r.started for r in self._in_flight if r.started > self._result_started),
                default=started,
            )
        reason = f"timed out after {self.timeout:g} s (still running)"
        return self._failed(time.monotonic() - started, reason, min(since, started))

    def _attempt(self) -> tuple[bool, str | None]:
        self.attempts += 1
        try:
            ok = self.func() is not False
            return ok, None if ok else "returned False"
        except Exception as exc:  # a check must never take the worker down
            return False, f"{type(exc).__name__}: {exc}"

    def _run(self, run: _Run) -> None:
        with self._lock:
            failures = self._failures
        while True:
            ok, reason = self._attempt()
            if ok:
                failures = 0
                break
            failures += 1
            if failures >= self.failure_threshold or time.monotonic() >= run.deadline:
                break
            self._log(
                f"{reason} (attempt {failures} of {self.failure_threshold}; again)", info=True
            )
        finished = time.monotonic()
        result = CheckResult(self.name, ok, finished - run.started, reason, run.started)
        # Cache a pass, or a confirmed failure that came in time; a late or unconfirmed
        # failure describes the past: the next probe starts a fresh run.
        cache = ok or (failures >= self.failure_threshold and finished <= run.deadline)
        with self._lock:
            self._in_flight.remove(run)
            if run.started > self._result_started:  # an older run never overwrites a newer
                self._result, self._result_started = result, run.started
                self._failures = failures
                self._fresh_until = finished + self.cache_seconds if cache else float("-inf")
        if not ok:
            self._log(reason)
        run.done.set()

    def _failed(self, elapsed: float, reason: str, started: float) -> CheckResult:
        self._log(reason)
        return CheckResult(self.name, False, elapsed, reason, started)

    def _log(self, reason: str | None, info: bool = False) -> None:
        last_reason, last_at = self._logged
        now = time.monotonic()
        if reason != last_reason or now - last_at >= LOG_EVERY_SECONDS:
            self._logged = (reason, now)
            if info:
                log.info("gunicorn-zdt: check %r: %s", self.name, reason)
            else:
                log.warning("gunicorn-zdt: check %r failed: %s", self.name, reason)


class CheckRegistry:
    """Named checks of one probe kind (readiness or startup), run concurrently."""

    def __init__(
        self,
        default_timeout: float,
        cache_seconds: float,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
    ) -> None:
        self.default_timeout = default_timeout
        self.cache_seconds = cache_seconds
        self.failure_threshold = failure_threshold
        self.checks: dict[str, Check] = {}

    def add(self, name: str, func: CheckFunc, timeout: float | None = None) -> Check:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"check name {name!r} must be letters, digits, '-' or '_' (it becomes a URL "
                "path segment and an ?exclude= value)"
            )
        if name in self.checks:
            raise ValueError(f"a check named {name!r} is already registered; pick another name")
        if not callable(func):
            raise TypeError(f"check {name!r} must be callable, got {func!r}")
        t = self.default_timeout if timeout is None else timeout
        if not t > 0:
            raise ValueError(f"check {name!r}: timeout must be > 0 seconds, got {timeout!r}")
        check = Check(name, func, t, self.cache_seconds, self.failure_threshold)
        self.checks[name] = check
        return check

    def run(self, names: Iterable[str]) -> list[CheckResult]:
        """Run the named checks concurrently; total time <= the largest timeout."""
        checks = [self.checks[n] for n in names]
        pending = [check.begin() for check in checks]  # start them all before waiting on any
        return [check.finish(p) for check, p in zip(checks, pending, strict=True)]


def sqlalchemy_ping(engine_or_db: Any, statement: str = "SELECT 1") -> CheckFunc:
    """A check that runs ``statement`` on a SQLAlchemy engine or a Flask-SQLAlchemy ``db``.

    What a pass proves: a connection from the engine's pool (a fresh one if the pooled
    one was dropped) ran ``statement`` within the check's timeout. Like ``pool_pre_ping``,
    a disconnect on a pooled connection (the server restarted, a proxy closed it) is not a
    failure yet: SQLAlchemy invalidates that connection, and the pool's older ones, and the
    ping runs once more on a fresh connection; only that second error fails the check. An
    unreachable server still fails: the fresh connection cannot be made either.

    SQLite: a pooled connection answers ``SELECT 1`` without reading the file, and keeps
    working on a file that was deleted (its descriptor stays open). So the ping first opens
    the database file by its path and reads its header: it fails when the file is gone
    (once seen: before that, the first connection creates it), unreadable, or not a SQLite
    database (an empty file passes: SQLite writes the header on the first write). It does not prove that your tables exist, nor that the pool's
    connections still use the file now at that path (a file replaced under a running app):
    pass a real query for that, e.g. ``sqlalchemy_ping(engine, "SELECT 1 FROM items LIMIT 1")``.

    The connection goes back to the pool in every case (``with`` block), also when the
    probe stopped waiting: the check's thread finishes and returns it.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    query = text(statement)

    def execute(engine: Any) -> None:
        with engine.connect() as conn:
            conn.execute(query).close()

    seen: set[str] = set()  # SQLite files this ping has found once

    def ping() -> None:
        engine = getattr(engine_or_db, "engine", engine_or_db)
        path = sqlite_file(engine.url)
        if path is not None and (path in seen or os.path.exists(path)):
            check_sqlite_file(path)  # a file not created yet is made by the first connect
            seen.add(path)
        try:
            execute(engine)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            execute(engine)  # the dropped connection is invalidated: a fresh one now

    return ping


SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_file(url: Any) -> str | None:
    """The database file of a SQLite URL, or None (another database, or in memory)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database.startswith("file:"):  # a URI filename (?uri=true)
        if url.query.get("mode") == "memory":
            return None
        database = database[len("file:") :]
    if database in ("", ":memory:"):
        return None
    return os.path.abspath(database)


def check_sqlite_file(path: str) -> None:
    """Raise unless ``path`` is a readable SQLite database file (or still empty)."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        raise FileNotFoundError(f"SQLite database file {path} is gone") from None
    except OSError as exc:
        raise OSError(f"SQLite database file {path} cannot be read: {exc.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise ValueError(f"{path} is not a SQLite database (it starts with {header[:16]!r})")
