import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support import Gunicorn

_ENV_PREFIXES = ("ZDT_", "GUNICORN_CMD_ARGS", "DATABASE_URL")
_ENV_NAMES = {"PORT", "WEB_CONCURRENCY"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With ``CI`` set, a skip is a failure: CI installs everything the suite needs.

    A test that skips because PostgreSQL, HAProxy, kubectl or gevent is missing backs a
    README claim; skipped in CI, the claim would go unchecked without anyone noticing. A
    test that may legitimately skip there says so with ``@pytest.mark.may_skip_in_ci``.
    """
    report = yield
    if (
        os.environ.get("CI")
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("may_skip_in_ci") is None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped with CI set (install what it needs in .ci/run): {reason}"
    return report


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without our settings in the environment (restored afterwards)."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[type[Gunicorn]]:
    """Factory for real Gunicorn masters; every one started is stopped after the test."""
    started: list[Gunicorn] = []

    class Tracked(Gunicorn):
        def start(self, wait_ready: bool = True) -> Gunicorn:
            started.append(self)
            return super().start(wait_ready)

    def make(**kw):  # type: ignore[no-untyped-def]
        kw.setdefault("tmp", tmp_path / f"g{len(started)}")
        kw["tmp"].mkdir(parents=True, exist_ok=True)
        return Tracked(**kw)

    yield make  # type: ignore[misc]
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (tests that stop it must start it again)."""
    from tests.postgres import Postgres

    try:
        server = Postgres()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.destroy()
