"""Readiness and startup checks: bounded, cached, single-flight, no signals.

Why each property matters:

* **Timeout without signals.** ``signal.alarm`` only works in the main thread; a check
  runs in a thread of its own and the probe waits for it at most ``timeout`` seconds.
* **Single-flight.** At most one run of a check is in flight per worker: concurrent
  probes wait for the same run, so a probe storm costs one query per check per cache
  period, and a check that hangs forever holds one thread, not one per probe.
* **Short cache.** A result is reused for ``cache_seconds``; the drain flip never goes
  through here, so it is never cached.
* **Concurrent.** Several checks run at once, so a probe takes as long as the slowest
  timeout, not their sum.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gunicorn_zdt.checks")

CheckFunc = Callable[[], Any]
"""A check passes when it returns anything but ``False`` and raises nothing."""

#: A failure reason is logged at most once per check per this many seconds.
LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    seconds: float
    reason: str | None = None


class Check:
    """One named check with its own timeout and a single-flight, cached runner."""

    def __init__(self, name: str, func: CheckFunc, timeout: float, cache_seconds: float) -> None:
        self.name = name
        self.func = func
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._done: threading.Event | None = None  # set when the run in flight ends
        self._started = 0.0
        self._result: CheckResult | None = None
        self._result_at = float("-inf")
        self._logged: tuple[str | None, float] = (None, float("-inf"))
        self.runs = 0  # how many times func was called (for tests and benchmarks)

    def begin(self) -> CheckResult | tuple[threading.Event, float]:
        """A fresh cached result, or (the run in flight, its deadline), starting one if needed."""
        with self._lock:  # never yield (gevent) or start a thread while holding it
            now = time.monotonic()
            if self._result is not None and now - self._result_at < self.cache_seconds:
                return self._result
            start = self._done is None
            if start:
                self._done = threading.Event()
                self._started = now
                self.runs += 1
            done, deadline = self._done, self._started + self.timeout
        assert done is not None
        if start:
            thread = threading.Thread(target=self._run, args=(done,), name=f"zdt-check-{self.name}")
            thread.daemon = True
            thread.start()
        return done, deadline

    def finish(self, pending: CheckResult | tuple[threading.Event, float]) -> CheckResult:
        """Wait for the run ``begin`` joined, at most until its deadline."""
        if isinstance(pending, CheckResult):
            return pending
        done, deadline = pending
        if done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                result = self._result
            assert result is not None
            return result
        elapsed = time.monotonic() - (deadline - self.timeout)
        return self._failed(elapsed, f"timed out after {self.timeout:g} s (still running)")

    def _run(self, done: threading.Event) -> None:
        started = time.monotonic()
        try:
            ok = self.func() is not False
            reason = None if ok else "returned False"
        except Exception as exc:  # a check must never take the worker down
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        result = CheckResult(self.name, ok, time.monotonic() - started, reason)
        if not ok:
            self._log(reason)
        with self._lock:
            self._result, self._result_at, self._done = result, time.monotonic(), None
        done.set()

    def _failed(self, elapsed: float, reason: str) -> CheckResult:
        self._log(reason)
        return CheckResult(self.name, False, elapsed, reason)

    def _log(self, reason: str | None) -> None:
        last_reason, last_at = self._logged
        now = time.monotonic()
        if reason != last_reason or now - last_at >= LOG_EVERY_SECONDS:
            self._logged = (reason, now)
            log.warning("gunicorn-zdt: check %r failed: %s", self.name, reason)


class CheckRegistry:
    """Named checks of one probe kind (readiness or startup), run concurrently."""

    def __init__(self, default_timeout: float, cache_seconds: float) -> None:
        self.default_timeout = default_timeout
        self.cache_seconds = cache_seconds
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
        check = self.checks[name] = Check(name, func, t, self.cache_seconds)
        return check

    def run(self, names: Iterable[str]) -> list[CheckResult]:
        """Run the named checks concurrently; total time <= the largest timeout."""
        checks = [self.checks[n] for n in names]
        pending = [check.begin() for check in checks]  # start them all before waiting on any
        return [check.finish(p) for check, p in zip(checks, pending, strict=True)]


def sqlalchemy_ping(engine_or_db: Any, statement: str = "SELECT 1") -> CheckFunc:
    """A check that runs ``SELECT 1`` on a SQLAlchemy engine or a Flask-SQLAlchemy ``db``.

    The connection goes back to the pool in every case (``with`` block), also when the
    probe stopped waiting: the check's thread finishes and returns it.
    """
    from sqlalchemy import text

    query = text(statement)

    def ping() -> None:
        engine = getattr(engine_or_db, "engine", engine_or_db)
        with engine.connect() as conn:
            conn.execute(query).close()

    return ping
