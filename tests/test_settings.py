"""Every setting's parser as a user meets it: a value in the environment, what it becomes, or
the exact line that says what to set instead. Tables, edges on both sides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gunicorn_zdt.core import settings
from gunicorn_zdt.core.budget import derive_graceful_timeout
from gunicorn_zdt.core.plan import DEFAULT_DRAIN_MAX_SECONDS, DrainPlan

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("ZDT_DRAIN_SECONDS", "0", 0.0),
        ("ZDT_DRAIN_SECONDS", " 2.5 ", 2.5),
        ("ZDT_DRAIN_SECONDS", "3600", 3600.0),  # the limit itself is allowed
        ("ZDT_DRAIN_MAX_SECONDS", "", None),  # empty: unset
        ("ZDT_DRAIN_MAX_SECONDS", "  ", None),
        ("ZDT_DRAIN_MAX_SECONDS", "15", 15.0),
        ("ZDT_HEARTBEAT_TIMEOUT_SECONDS", "", None),
        ("ZDT_GRACE_PERIOD_SECONDS", "86400", 86400.0),  # a day is allowed
        ("ZDT_GRACE_PERIOD_SECONDS", "", None),
        ("ZDT_CHECK_TIMEOUT_SECONDS", "0.5", 0.5),
        ("ZDT_CHECK_TIMEOUT_SECONDS", "60", 60.0),
        ("ZDT_CHECK_CACHE_SECONDS", "0", 0.0),
        ("ZDT_CHECK_FAILURE_THRESHOLD", "1", 1),
        ("ZDT_CHECK_FAILURE_THRESHOLD", " 5 ", 5),
        ("ZDT_EXPOSE_REASONS", "1", True),
        ("ZDT_EXPOSE_REASONS", "TRUE", True),
        ("ZDT_EXPOSE_REASONS", " yes ", True),
        ("ZDT_EXPOSE_REASONS", "on", True),
        ("ZDT_EXPOSE_REASONS", "0", False),
        ("ZDT_EXPOSE_REASONS", "False", False),
        ("ZDT_EXPOSE_REASONS", "no", False),
        ("ZDT_EXPOSE_REASONS", "off", False),
        ("ZDT_EXPOSE_REASONS", "", False),
        ("ZDT_REPORT_JSON", "true", True),
        ("ZDT_PROBE_PREFIX", "/", "/"),
        ("ZDT_PROBE_PREFIX", " /health/ ", "/health"),
        ("ZDT_PROBE_PREFIX", "/a/b", "/a/b"),
        ("ZDT_PROBE_PREFIX", "/ops/X", "/ops/X"),  # only slashes are trimmed
        ("ZDT_HEALTH_CHECK_PATHS", "", ()),
        ("ZDT_HEALTH_CHECK_PATHS", "/lb-health, /ping,", ("/lb-health", "/ping")),
        ("ZDT_PROBE_BIND", "", None),
        ("ZDT_PROBE_BIND", "0", None),
        ("ZDT_PROBE_BIND", "off", None),
        ("ZDT_PROBE_BIND", "false", None),
        ("ZDT_PROBE_BIND", "8081", ("0.0.0.0", 8081)),
        ("ZDT_PROBE_BIND", " 127.0.0.1:9000 ", ("127.0.0.1", 9000)),
        ("ZDT_PROBE_BIND", "[::]:8081", ("::", 8081)),
        ("ZDT_PROBE_BIND", "NODEX:8081", ("NODEX", 8081)),  # only IPv6 brackets are trimmed
        ("ZDT_PROBE_BIND", "0.0.0.0:0", ("0.0.0.0", 0)),
        ("ZDT_PROBE_BIND", "0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_environment_value_becomes(name: str, raw: str, value: object) -> None:
    assert settings.resolve(name, environ={name: raw}) == value


def _e(name: str) -> str:
    return f"e.g. {name}=5"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        (
            "ZDT_DRAIN_SECONDS",
            "",
            "ZDT_DRAIN_SECONDS is empty; set it to a number of seconds, " + _e("ZDT_DRAIN_SECONDS"),
        ),
        (
            "ZDT_DRAIN_SECONDS",
            " ",
            "ZDT_DRAIN_SECONDS is empty; set it to a number of seconds, " + _e("ZDT_DRAIN_SECONDS"),
        ),
        (
            "ZDT_DRAIN_SECONDS",
            "inf",
            "ZDT_DRAIN_SECONDS='inf' must be a finite number of seconds >= 0; "
            + _e("ZDT_DRAIN_SECONDS"),
        ),
        (
            "ZDT_DRAIN_SECONDS",
            "3600.5",
            "ZDT_DRAIN_SECONDS='3600.5' is over the limit of 3600 s; use a number of seconds "
            "<= 3600, " + _e("ZDT_DRAIN_SECONDS"),
        ),
        (
            "ZDT_DRAIN_MAX_SECONDS",
            "-0.5",
            "ZDT_DRAIN_MAX_SECONDS='-0.5' must be a finite number of seconds >= 0; "
            + _e("ZDT_DRAIN_MAX_SECONDS"),
        ),
        (
            "ZDT_DRAIN_MAX_SECONDS",
            "3601",
            "ZDT_DRAIN_MAX_SECONDS='3601' is over the limit of 3600 s; use a number of seconds "
            "<= 3600, " + _e("ZDT_DRAIN_MAX_SECONDS"),
        ),
        (
            "ZDT_GRACE_PERIOD_SECONDS",
            "86401",
            "ZDT_GRACE_PERIOD_SECONDS='86401' is over the limit of 86400 s; use a number of "
            "seconds <= 86400, " + _e("ZDT_GRACE_PERIOD_SECONDS"),
        ),
        (
            "ZDT_CHECK_TIMEOUT_SECONDS",
            "0",
            "ZDT_CHECK_TIMEOUT_SECONDS='0' must be a finite number of seconds > 0; "
            + _e("ZDT_CHECK_TIMEOUT_SECONDS"),
        ),
        (
            "ZDT_CHECK_TIMEOUT_SECONDS",
            "",
            "ZDT_CHECK_TIMEOUT_SECONDS is empty; set it to a number of seconds, "
            + _e("ZDT_CHECK_TIMEOUT_SECONDS"),
        ),
        (
            "ZDT_CHECK_TIMEOUT_SECONDS",
            "61",
            "ZDT_CHECK_TIMEOUT_SECONDS='61' is over the limit of 60 s; use a number of seconds "
            "<= 60, " + _e("ZDT_CHECK_TIMEOUT_SECONDS"),
        ),
        (
            "ZDT_CHECK_FAILURE_THRESHOLD",
            "0",
            "ZDT_CHECK_FAILURE_THRESHOLD='0' must be a whole number from 1 to 5; "
            "e.g. ZDT_CHECK_FAILURE_THRESHOLD=2",
        ),
        (
            "ZDT_CHECK_FAILURE_THRESHOLD",
            "6",
            "ZDT_CHECK_FAILURE_THRESHOLD='6' must be a whole number from 1 to 5; "
            "e.g. ZDT_CHECK_FAILURE_THRESHOLD=2",
        ),
        (
            "ZDT_CHECK_FAILURE_THRESHOLD",
            "2.0",
            "ZDT_CHECK_FAILURE_THRESHOLD='2.0' must be a whole number from 1 to 5; "
            "e.g. ZDT_CHECK_FAILURE_THRESHOLD=2",
        ),
        (
            "ZDT_REPORT_JSON",
            "2",
            "ZDT_REPORT_JSON='2' is not a boolean; use true or false",
        ),
        (
            "ZDT_PROBE_PREFIX",
            "/health z",
            "ZDT_PROBE_PREFIX='/health z' must be a URL path starting with '/', e.g. /healthz",
        ),
        (
            "ZDT_PROBE_PREFIX",
            "/healthz?x=1",
            "ZDT_PROBE_PREFIX='/healthz?x=1' must be a URL path starting with '/', e.g. /healthz",
        ),
        (
            "ZDT_HEALTH_CHECK_PATHS",
            "/ping,lb-health",
            "ZDT_HEALTH_CHECK_PATHS='/ping,lb-health': 'lb-health' is not a URL path; use "
            "comma-separated paths starting with '/', e.g. ZDT_HEALTH_CHECK_PATHS=/lb-health,/ping",
        ),
        (
            "ZDT_HEALTH_CHECK_PATHS",
            "/a b",
            "ZDT_HEALTH_CHECK_PATHS='/a b': '/a b' is not a URL path; use "
            "comma-separated paths starting with '/', e.g. ZDT_HEALTH_CHECK_PATHS=/lb-health,/ping",
        ),
        *[
            (
                "ZDT_PROBE_BIND",
                raw,
                f"ZDT_PROBE_BIND={raw!r} is not an address; use PORT or HOST:PORT, e.g. "
                "ZDT_PROBE_BIND=0.0.0.0:8081 (empty or off: no probe listener)",
            )
            for raw in ("65536", "host:", ":8081", "a b:8081", "localhost:http", "-1")
        ],
    ],
)
def test_bad_environment_value_names_the_fix(name: str, raw: str, message: str) -> None:
    with pytest.raises(settings.SettingError) as err:
        settings.resolve(name, environ={name: raw})
    assert str(err.value) == message


def test_explicit_values_are_parsed_like_the_environment() -> None:
    """install(...)/app.config values: used when the environment is silent, checked alike."""
    assert settings.resolve("ZDT_EXPOSE_REASONS", True, {}) is True
    assert settings.resolve("ZDT_EXPOSE_REASONS", False, {}) is False
    assert settings.resolve("ZDT_HEALTH_CHECK_PATHS", ["/a", " /b "], {}) == ("/a", "/b")
    assert settings.resolve("ZDT_HEALTH_CHECK_PATHS", ("/a",), {}) == ("/a",)
    assert settings.resolve("ZDT_PROBE_BIND", "9000", {}) == ("0.0.0.0", 9000)
    assert settings.resolve("ZDT_PROBE_BIND", None, {}) is None
    assert settings.resolve("ZDT_CHECK_FAILURE_THRESHOLD", 3, {}) == 3
    with pytest.raises(settings.SettingError, match=r"ZDT_DRAIN_SECONDS=-2 must be"):
        settings.resolve("ZDT_DRAIN_SECONDS", -2, {})
    # The environment wins even over an explicit value it makes invalid.
    with pytest.raises(settings.SettingError, match="ZDT_PROBE_PREFIX='x'"):
        settings.resolve("ZDT_PROBE_PREFIX", "/ok", {"ZDT_PROBE_PREFIX": "x"})


def test_defaults_when_nothing_is_set() -> None:
    defaults = {s.name: settings.resolve(s.name, environ={}) for s in settings.SETTINGS}
    assert defaults == {
        "ZDT_DRAIN_SECONDS": 5.0,
        "ZDT_DRAIN_QUIET_SECONDS": 2.0,
        "ZDT_DRAIN_MAX_SECONDS": None,
        "ZDT_HEALTH_CHECK_PATHS": (),
        "ZDT_REPORT_JSON": False,
        "ZDT_GRACE_PERIOD_SECONDS": None,
        "ZDT_PRESTOP_SECONDS": 0.0,
        "ZDT_MIN_PROPAGATION_SECONDS": 3.0,
        "ZDT_PROBE_BIND": None,
        "ZDT_HEARTBEAT_TIMEOUT_SECONDS": None,
        "ZDT_PROBE_PREFIX": "/healthz",
        "ZDT_CHECK_TIMEOUT_SECONDS": 1.0,
        "ZDT_CHECK_CACHE_SECONDS": 1.0,
        "ZDT_CHECK_FAILURE_THRESHOLD": 2,
        "ZDT_REQUIRE_INSTALL": True,
        "ZDT_EXPOSE_REASONS": False,
    }


def test_resolve_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZDT_DRAIN_SECONDS", "7")
    assert settings.resolve("ZDT_DRAIN_SECONDS") == 7.0
    assert settings.resolve("ZDT_DRAIN_SECONDS", 9) == 7.0


def test_validate_environment_stops_at_a_bad_value_of_any_side() -> None:
    settings.validate_environment({"ZDT_EXPOSE_REASONS": "yes", "OTHER": "x"})
    with pytest.raises(settings.SettingError, match="ZDT_CHECK_CACHE_SECONDS='soon'"):
        settings.validate_environment({"ZDT_DRAIN_SECONDS": "1", "ZDT_CHECK_CACHE_SECONDS": "soon"})


def test_validate_environment_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZDT_CHECK_FAILURE_THRESHOLD", "9")
    with pytest.raises(settings.SettingError, match="ZDT_CHECK_FAILURE_THRESHOLD='9'"):
        settings.validate_environment()


def test_readme_reference_shows_each_default_as_a_user_would_write_it() -> None:
    table = settings.reference_markdown()
    assert table in (REPO / "README.md").read_text()
    lines = table.splitlines()
    assert lines[:2] == ["| setting | default | read by | meaning |", "| --- | --- | --- | --- |"]
    cells = {line.split(" | ")[0][3:-1]: line.split(" | ")[1:3] for line in lines[2:]}
    assert cells["ZDT_DRAIN_SECONDS"] == ["`5`", "gunicorn"]
    assert cells["ZDT_DRAIN_MAX_SECONDS"] == ["unset", "gunicorn"]
    assert cells["ZDT_HEALTH_CHECK_PATHS"] == ["`none`", "gunicorn"]
    assert cells["ZDT_REPORT_JSON"] == ["`false`", "gunicorn"]
    assert cells["ZDT_PROBE_PREFIX"] == ["`/healthz`", "both"]
    assert cells["ZDT_CHECK_FAILURE_THRESHOLD"] == ["`2`", "flask"]
    assert cells["ZDT_CHECK_TIMEOUT_SECONDS"] == ["`1`", "flask"]


# -- DrainPlan: the Gunicorn-side settings resolved together ---------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    return monkeypatch


def test_drain_plan_reads_every_gunicorn_side_setting(clean_env: pytest.MonkeyPatch) -> None:
    for name, raw in {
        "ZDT_PRESTOP_SECONDS": "2",
        "ZDT_GRACE_PERIOD_SECONDS": "40",
        "ZDT_MIN_PROPAGATION_SECONDS": "4",
        "ZDT_PROBE_BIND": "8081",
        "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "12",
        "ZDT_PROBE_PREFIX": "/hz",
        "ZDT_DRAIN_QUIET_SECONDS": "1",
        "ZDT_DRAIN_MAX_SECONDS": "9",
        "ZDT_HEALTH_CHECK_PATHS": "/ping",
        "ZDT_REPORT_JSON": "yes",
    }.items():
        clean_env.setenv(name, raw)
    assert DrainPlan.resolve(drain_seconds=3) == DrainPlan(
        drain_seconds=3.0,
        prestop_seconds=2.0,
        grace_period_seconds=40.0,
        min_propagation_seconds=4.0,
        probe_bind=("0.0.0.0", 8081),
        heartbeat_timeout_seconds=12.0,
        probe_prefix="/hz",
        drain_quiet_seconds=1.0,
        drain_max_seconds=9.0,
        health_check_paths=("/ping",),
        report_json=True,
    )


def test_drain_plan_takes_install_arguments_when_the_environment_is_silent(
    clean_env: pytest.MonkeyPatch,
) -> None:
    plan = DrainPlan.resolve(
        drain_seconds=4,
        grace_period_seconds=50,
        prestop_seconds=1,
        drain_max_seconds=10,
        probe_bind="127.0.0.1:9100",
    )
    assert (plan.drain_seconds, plan.grace_period_seconds, plan.prestop_seconds) == (4, 50, 1)
    assert (plan.drain_max_seconds, plan.drain_cap_seconds) == (10, 10)
    assert plan.probe_bind == ("127.0.0.1", 9100)
    # No maximum and no grace period: the default maximum, saying why.
    plan = DrainPlan.resolve()
    assert plan.drain_cap_seconds == DEFAULT_DRAIN_MAX_SECONDS == 15.0
    assert "the grace period is unknown" in plan.drain_max_reason


@pytest.mark.parametrize(
    ("env", "timeouts", "maximum", "graceful_timeout"),
    [
        # grace 40 - preStop 0 - margin 2 - timeout 20 = 18: graceful_timeout stays 20
        ({"ZDT_GRACE_PERIOD_SECONDS": "40"}, {"worker_timeout": 20}, 18.0, 20),
        # Gunicorn's default timeout 30 when the config sets none
        ({"ZDT_GRACE_PERIOD_SECONDS": "60"}, {}, 28.0, 30),
        # preStop counts; a config's own graceful_timeout is kept whole
        (
            {"ZDT_GRACE_PERIOD_SECONDS": "60", "ZDT_PRESTOP_SECONDS": "10"},
            {"worker_timeout": 20, "graceful_timeout": 25},
            23.0,
            25,
        ),
        # a fractional remainder rounds down: graceful_timeout never drops below timeout
        (
            {"ZDT_GRACE_PERIOD_SECONDS": "40", "ZDT_PRESTOP_SECONDS": "0.5"},
            {"worker_timeout": 20},
            17.0,
            20,
        ),
        # no room beyond the minimum (Kubernetes' default grace 30, timeout 30): fixed at 5
        ({"ZDT_GRACE_PERIOD_SECONDS": "30"}, {"worker_timeout": 30}, 5.0, 23),
        # no grace period: the default maximum; graceful_timeout is Gunicorn's
        ({}, {"worker_timeout": 20}, 15.0, None),
    ],
)
def test_unset_maximum_is_chosen_so_graceful_timeout_covers_timeout(
    clean_env: pytest.MonkeyPatch,
    env: dict[str, str],
    timeouts: dict[str, float],
    maximum: float,
    graceful_timeout: int | None,
) -> None:
    for name, raw in env.items():
        clean_env.setenv(name, raw)
    plan = DrainPlan.resolve(**timeouts)  # type: ignore[arg-type]
    assert plan.drain_cap_seconds == maximum, plan.drain_max_reason
    assert plan.drain_max_reason
    if plan.grace_period_seconds is not None and "graceful_timeout" not in timeouts:
        derived = derive_graceful_timeout(
            plan.grace_period_seconds, plan.drain_cap_seconds, plan.prestop_seconds
        )
        assert derived == graceful_timeout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ZDT_DRAIN_SECONDS": "6", "ZDT_DRAIN_MAX_SECONDS": "5"},
            "ZDT_DRAIN_SECONDS=6 > ZDT_DRAIN_MAX_SECONDS=5: the minimum drain exceeds the "
            "maximum; raise ZDT_DRAIN_MAX_SECONDS to at least 6 or lower ZDT_DRAIN_SECONDS",
        ),
        (
            {
                "ZDT_DRAIN_SECONDS": "1",
                "ZDT_DRAIN_QUIET_SECONDS": "5.5",
                "ZDT_DRAIN_MAX_SECONDS": "5",
            },
            "ZDT_DRAIN_QUIET_SECONDS=5.5 > ZDT_DRAIN_MAX_SECONDS=5: the drain could never end "
            "quiet; lower the quiet period below 5 or raise the maximum",
        ),
    ],
)
def test_drain_window_that_cannot_work_is_refused(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, raw in env.items():
        clean_env.setenv(name, raw)
    with pytest.raises(settings.SettingError) as err:
        DrainPlan.resolve()
    assert str(err.value) == message


@pytest.mark.parametrize(
    "env",
    [
        {"ZDT_DRAIN_SECONDS": "5", "ZDT_DRAIN_MAX_SECONDS": "5"},  # minimum == maximum
        {"ZDT_DRAIN_SECONDS": "1", "ZDT_DRAIN_QUIET_SECONDS": "5", "ZDT_DRAIN_MAX_SECONDS": "5"},
        {"ZDT_DRAIN_SECONDS": "1", "ZDT_DRAIN_QUIET_SECONDS": "30"},  # fixed drain: quiet unused
        # a fixed drain the user set (minimum = maximum) never waits for quiet either
        {"ZDT_DRAIN_SECONDS": "3", "ZDT_DRAIN_MAX_SECONDS": "3", "ZDT_DRAIN_QUIET_SECONDS": "5"},
    ],
)
def test_drain_window_on_the_edge_is_accepted(
    clean_env: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, raw in env.items():
        clean_env.setenv(name, raw)
    DrainPlan.resolve()


def test_no_drain_is_sigterm_closing_at_once() -> None:
    """A config without our hooks: no preStop, no drain, no grace known, no probe listener."""
    assert DrainPlan.no_drain(6.0) == DrainPlan(0.0, 0.0, None, 6.0)
    assert (DrainPlan.no_drain().min_propagation_seconds, DrainPlan.no_drain().probe_bind) == (
        None,
        None,
    )


class _Cfg:
    """The Gunicorn settings budget_for reads, as `gunicorn-zdt check` passes them."""

    def __init__(self, worker_class: str, keepalive: float = 10) -> None:
        self.worker_class_str = worker_class
        self.keepalive = keepalive
        self.graceful_timeout = 20
        self.timeout = 30


KEEPALIVE_WARNING = (
    "keepalive 10 <= 60, the idle timeout of the pooling proxies usually in front (nginx "
    "upstream keepalive_timeout, AWS ALB): Gunicorn closes idle connections first, and a "
    "request the proxy sends on one at that moment fails (502; a POST is lost); raise "
    "keepalive above it, e.g. --keep-alive 75"
)


@pytest.mark.parametrize(
    ("worker_class", "warns"),
    [
        ("sync", False),  # the sync worker closes every connection itself
        ("SYNC", False),
        ("gunicorn.workers.sync.SyncWorker", False),
        ("gthread", True),
        ("gevent", True),
    ],
)
def test_keepalive_warning_only_for_workers_that_keep_connections(
    clean_env: pytest.MonkeyPatch, worker_class: str, warns: bool
) -> None:
    clean_env.setenv("ZDT_DRAIN_MAX_SECONDS", "5")  # a fixed 5 s drain
    budget = DrainPlan.resolve().budget_for(_Cfg(worker_class))
    assert (KEEPALIVE_WARNING in budget.warnings()) is warns


def test_budget_for_counts_prestop_the_drain_maximum_and_propagation(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, raw in {
        "ZDT_PRESTOP_SECONDS": "1",
        "ZDT_DRAIN_SECONDS": "2",
        "ZDT_DRAIN_MAX_SECONDS": "4",
        "ZDT_MIN_PROPAGATION_SECONDS": "6",
        "ZDT_GRACE_PERIOD_SECONDS": "20",
    }.items():
        clean_env.setenv(name, raw)
    budget = DrainPlan.resolve().budget_for(_Cfg("sync"))
    assert budget.errors()[0].startswith(
        "terminationGracePeriodSeconds 20 < preStop 1 + drain 4 + graceful_timeout 20 + "
        "margin 2 = 27; raise it to 27"
    )
    assert budget.warnings() == [
        "graceful_timeout 20 < timeout 30: a request that runs longer than 20 s when the "
        "graceful stop begins is cut; lower timeout or raise graceful_timeout (and the grace "
        "period with it)",
        "preStop 1 + drain 4 < propagation 6: new connections may still arrive after the "
        "listeners close; raise ZDT_DRAIN_MAX_SECONDS or add a preStop sleep",
    ]
    assert (
        3,
        "drain minimum: the drain ends once no new connection came for the quiet period",
    ) in (budget.timeline())


def _window_plan(drain: float, grace: float | None, prestop: float = 0.0) -> DrainPlan:
    return DrainPlan(drain, prestop, grace, 0.0)


@pytest.mark.parametrize(
    ("drain", "grace", "prestop", "timeout", "graceful", "maximum", "reason"),
    [
        (0.0, 40.0, 0.0, 20, None, 0.0, "0: ZDT_DRAIN_SECONDS=0 turns the drain off"),
        (
            5.0,
            None,
            0.0,
            20,
            None,
            15.0,
            "default 15 s: the grace period is unknown (set ZDT_GRACE_PERIOD_SECONDS to derive it)",
        ),
        (
            20.0,
            None,
            0.0,
            20,
            None,
            20.0,
            "default 15 s: the grace period is unknown (set ZDT_GRACE_PERIOD_SECONDS to derive it)",
        ),
        (
            5.0,
            40.0,
            0.0,
            20,
            None,
            18.0,
            "derived: grace period 40 - preStop 0 - margin 2 - timeout 20",
        ),
        (
            5.0,
            40.0,
            3.0,
            20,
            25,
            10.0,
            "derived: grace period 40 - preStop 3 - margin 2 - graceful_timeout 25",
        ),
        (
            5.0,
            40.0,
            0.0,
            None,
            None,
            8.0,
            "derived: grace period 40 - preStop 0 - margin 2 - timeout 30",
        ),
        (
            5.0,
            40.0,
            0.0,
            0,
            None,
            38.0,
            "derived: grace period 40 - preStop 0 - margin 2 - timeout 0",
        ),
        (
            5.0,
            40.5,
            0.0,
            20,
            None,
            18.0,
            "derived: grace period 40.5 - preStop 0 - margin 2 - timeout 20",
        ),
        (
            5.0,
            27.0,
            0.0,
            20,
            None,
            5.0,  # room == minimum: derived, not fixed
            "derived: grace period 27 - preStop 0 - margin 2 - timeout 20",
        ),
        (
            5.0,
            26.0,
            0.0,
            20,
            None,
            5.0,
            "fixed at the minimum: grace period 26 - preStop 0 - margin 2 - timeout 20 = 4 s "
            "leaves no room for a longer drain (raise the grace period or set "
            "ZDT_DRAIN_MAX_SECONDS)",
        ),
        (
            5.0,
            86400.0,
            0.0,
            20,
            None,
            3600.0,
            "derived: grace period 86400 - preStop 0 - margin 2 - timeout 20",
        ),
    ],
)
def test_the_chosen_maximum_and_its_reason(
    drain: float,
    grace: float | None,
    prestop: float,
    timeout: int | None,
    graceful: int | None,
    maximum: float,
    reason: str,
) -> None:
    """Exactly what the start-up line says about the drain's maximum, edges included."""
    from gunicorn_zdt.core.plan import choose_maximum

    got = choose_maximum(_window_plan(drain, grace, prestop), timeout, graceful)
    assert got == (maximum, reason)
