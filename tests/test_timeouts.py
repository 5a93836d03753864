"""Coordinated timeouts: the budget's arithmetic, and Gunicorn refusing timings that cut requests."""

from __future__ import annotations

import signal

import pytest

from gunicorn_zdt.core import settings
from gunicorn_zdt.core.budget import Budget, derive_graceful_timeout


@pytest.mark.parametrize(
    ("grace", "drain", "prestop", "expected"),
    [
        (30, 5, 0, 23),
        (30, 5, 5, 18),
        (60, 10, 0, 48),
        (10.5, 2.5, 0, 6),  # floored: Gunicorn wants whole seconds
        (7, 5, 0, 0),  # nothing fits
    ],
)
def test_derived_graceful_timeout_fits_the_grace_period(grace, drain, prestop, expected) -> None:
    assert derive_graceful_timeout(grace, drain, prestop) == expected


def test_grace_period_too_short_names_every_number_and_the_fix() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=30, prestop_seconds=5, grace_period_seconds=30)
    assert b.errors() == [
        "terminationGracePeriodSeconds 30 < preStop 5 + drain 5 + graceful_timeout 30 + "
        "margin 2 = 42; raise it to 42 or lower graceful_timeout to 18, so the kubelet's "
        "SIGKILL cannot cut a request"
    ]


def test_budget_that_fits_has_no_errors_and_reports_slack() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=20, grace_period_seconds=30)
    assert b.errors() == []
    assert b.slack_seconds == 3


@pytest.mark.parametrize(
    ("budget", "warning_start"),
    [
        (Budget(drain_seconds=5, graceful_timeout=10, worker_timeout=30), "graceful_timeout 10 <"),
        (
            Budget(drain_seconds=1, graceful_timeout=30, min_propagation_seconds=3),
            "preStop 0 + drain 1 < propagation 3",
        ),
        (
            Budget(drain_seconds=2, graceful_timeout=30, keepalive_seconds=5),
            "keepalive 5 <= 60, the idle timeout of the pooling proxies",
        ),
    ],
)
def test_budget_warnings(budget: Budget, warning_start: str) -> None:
    (warning,) = budget.warnings()
    assert warning.startswith(warning_start)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        (
            "ZDT_DRAIN_SECONDS",
            "abc",
            "ZDT_DRAIN_SECONDS='abc' is not a number; set it to a number of seconds, "
            "e.g. ZDT_DRAIN_SECONDS=5",
        ),
        (
            "ZDT_DRAIN_SECONDS",
            "-1",
            "ZDT_DRAIN_SECONDS='-1' must be a finite number of seconds >= 0; "
            "e.g. ZDT_DRAIN_SECONDS=5",
        ),
        (
            "ZDT_GRACE_PERIOD_SECONDS",
            "nan",
            "ZDT_GRACE_PERIOD_SECONDS='nan' must be a finite number of seconds >= 0; "
            "e.g. ZDT_GRACE_PERIOD_SECONDS=5",
        ),
        (
            "ZDT_EXPOSE_REASONS",
            "maybe",
            "ZDT_EXPOSE_REASONS='maybe' is not a boolean; use true or false",
        ),
        (
            "ZDT_PROBE_PREFIX",
            "healthz",
            "ZDT_PROBE_PREFIX='healthz' must be a URL path starting with '/', e.g. /healthz",
        ),
    ],
)
def test_bad_setting_values_say_what_to_set(name: str, raw: str, message: str) -> None:
    with pytest.raises(settings.SettingError) as err:
        settings.resolve(name, environ={name: raw})
    assert str(err.value) == message


def test_environment_beats_explicit_value_beats_default() -> None:
    assert settings.resolve("ZDT_DRAIN_SECONDS", None, {}) == 5.0
    assert settings.resolve("ZDT_DRAIN_SECONDS", 8, {}) == 8.0
    assert settings.resolve("ZDT_DRAIN_SECONDS", 8, {"ZDT_DRAIN_SECONDS": "3"}) == 3.0


def test_readme_configuration_reference_matches_the_settings_table() -> None:
    from tests.support import REPO

    assert settings.reference_markdown() in (REPO / "README.md").read_text()


# -- real Gunicorn start-up ------------------------------------------------------------


def _refused(server) -> str:
    assert server.wait_exit(20) == 1
    lines = [line for line in server.log().splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, server.log()
    return lines[0]


def test_gunicorn_refuses_an_explicit_graceful_timeout_that_does_not_fit(gunicorn) -> None:
    server = gunicorn(
        env={
            "ZDT_GRACE_PERIOD_SECONDS": "30",
            "ZDT_DRAIN_SECONDS": "2",
            "ZDT_DRAIN_MAX_SECONDS": "5",
        },
        args=["--graceful-timeout", "30"],
    ).start(wait_ready=False)
    assert _refused(server) == (
        "Error: gunicorn-zdt: terminationGracePeriodSeconds 30 < preStop 0 + drain 5 + "
        "graceful_timeout 30 + margin 2 = 37; raise it to 37 or lower graceful_timeout to 23, "
        "so the kubelet's SIGKILL cannot cut a request (grace period from "
        "ZDT_GRACE_PERIOD_SECONDS, preStop from ZDT_PRESTOP_SECONDS, drain from "
        "ZDT_DRAIN_MAX_SECONDS: the longest drain)"
    )
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("raw", ["abc", "-3", ""])
def test_gunicorn_refuses_a_bad_drain_value_with_one_line(gunicorn, raw: str) -> None:
    server = gunicorn(env={"ZDT_DRAIN_SECONDS": raw}).start(wait_ready=False)
    line = _refused(server)
    assert line.startswith("Error: gunicorn-zdt: ZDT_DRAIN_SECONDS")
    assert "Traceback" not in server.log()


def test_graceful_timeout_is_derived_from_the_grace_period(gunicorn) -> None:
    server = gunicorn(
        config="timeout = 20\n",
        env={
            "ZDT_GRACE_PERIOD_SECONDS": "30",
            "ZDT_DRAIN_SECONDS": "2",
            "ZDT_DRAIN_MAX_SECONDS": "5",
        },
    ).start()
    server.wait_for_log(
        r"drain 2 s to 5 s \(quiet 2 s\), graceful_timeout 23 s, preStop 0 s, "
        r"grace period 30 s \(slack 0 s\)"
    )
    assert "WARNING" not in server.log()


def test_warns_when_graceful_timeout_is_shorter_than_the_worker_timeout(gunicorn) -> None:
    server = gunicorn(
        config="timeout = 60\n",
        env={
            "ZDT_GRACE_PERIOD_SECONDS": "30",
            "ZDT_DRAIN_SECONDS": "2",
            "ZDT_DRAIN_MAX_SECONDS": "5",
        },
    ).start()
    server.wait_for_log(r"WARNING\] gunicorn-zdt: graceful_timeout 23 < timeout 60")


def test_hooks_already_in_the_config_still_run(gunicorn, tmp_path) -> None:
    marks = tmp_path / "marks.txt"
    server = gunicorn(
        config=f"""
        def when_ready(server):
            open({str(marks)!r}, "a").write("when_ready\\n")

        def pre_request(worker, req):
            open({str(marks)!r}, "a").write("pre_request\\n")
        """,
        env={"ZDT_DRAIN_SECONDS": "1"},
    ).start()
    server.get("/work?ms=0")
    assert {"when_ready", "pre_request"} <= set(marks.read_text().split())
    server.signal(signal.SIGTERM)
    server.wait_for_log("draining .* for at least 1 s")
    assert server.wait_exit(15) == 0


def test_user_hook_with_the_wrong_arity_is_named(gunicorn) -> None:
    server = gunicorn(config="def pre_request(req):\n    pass\n").start(wait_ready=False)
    assert server.wait_exit(20) == 1
    assert (
        "Error: gunicorn-zdt: your Gunicorn hook pre_request takes 1 argument(s); Gunicorn calls it with 2 (worker, req): fix its signature"
        in server.log()
    )


def test_probes_without_hooks_report_serving_and_warn_once(gunicorn) -> None:
    server = gunicorn(
        hooks=False, config="workers = 1\n", env={"ZDT_REQUIRE_INSTALL": "false"}
    ).start()
    for _ in range(3):
        assert server.get("/healthz/ready").status == 200
    assert server.log().count("drain coordination is off") == 1
    server.signal(signal.SIGTERM)
    assert server.wait_exit(15) == 0
