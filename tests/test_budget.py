"""The budget's inequalities at their boundaries: exactly equal, one second short, one over.

Every comparison in gunicorn_zdt/core/budget.py has a row on each side of its edge, so moving
an edge by a second (or turning ``<`` into ``<=``) fails a test.
"""

from __future__ import annotations

import pytest

from gunicorn_zdt.core.budget import MARGIN_SECONDS, Budget, derive_graceful_timeout, fmt

GRACE_MESSAGE = (
    "terminationGracePeriodSeconds {grace} < preStop 0 + drain 5 + graceful_timeout 23 + "
    "margin 2 = 30; raise it to 30 or lower graceful_timeout to {fits}, so the kubelet's "
    "SIGKILL cannot cut a request"
)


@pytest.mark.parametrize(
    ("grace", "errors"),
    [
        (31, []),  # 1 s of slack
        (30, []),  # exactly enough: slack 0
        (29.5, [GRACE_MESSAGE.format(grace="29.5", fits=22)]),
        (29, [GRACE_MESSAGE.format(grace=29, fits=22)]),  # 1 s short
    ],
)
def test_grace_period_boundary(grace: float, errors: list[str]) -> None:
    b = Budget(drain_seconds=5, graceful_timeout=23, grace_period_seconds=grace)
    assert b.required_grace_seconds == 30
    assert b.slack_seconds == grace - 30
    assert b.errors() == errors


def test_grace_period_unknown_has_no_slack_and_no_error() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=1000)
    assert b.slack_seconds is None
    assert b.errors() == []


@pytest.mark.parametrize(
    ("grace", "lower"),
    [
        # grace - preStop - drain - margin: 8 - 2 - 5 - 0.5 = 0.5 -> floor 0: nothing fits
        (8, " (drain and preStop alone leave no room for graceful_timeout)"),
        # 9 - 2 - 5 - 0.5 = 1.5 -> 1: the smallest graceful_timeout that fits
        (9, " or lower graceful_timeout to 1"),
    ],
)
def test_grace_period_fix_says_whether_any_graceful_timeout_fits(grace: float, lower: str) -> None:
    b = Budget(
        drain_seconds=5,
        graceful_timeout=30,
        prestop_seconds=2,
        grace_period_seconds=grace,
        margin_seconds=0.5,
    )
    assert b.errors() == [
        f"terminationGracePeriodSeconds {grace} < preStop 2 + drain 5 + graceful_timeout 30 + "
        f"margin 0.5 = 37.5; raise it to 38{lower}, so the kubelet's SIGKILL cannot cut a request"
    ]


@pytest.mark.parametrize(
    ("prestop", "expect_error"),
    [(9, False), (10, False), (11, True)],  # preStop > grace, not >=
)
def test_prestop_longer_than_grace_boundary(prestop: float, expect_error: bool) -> None:
    b = Budget(
        drain_seconds=0,
        graceful_timeout=0,
        prestop_seconds=prestop,
        grace_period_seconds=10,
        margin_seconds=0,
    )
    prestop_errors = [e for e in b.errors() if e.startswith("preStop")]
    expected = (
        [
            f"preStop {prestop} > terminationGracePeriodSeconds 10; the pod is killed before "
            "SIGTERM is even sent: shorten preStop or raise the grace period"
        ]
        if expect_error
        else []
    )
    assert prestop_errors == expected


@pytest.mark.parametrize(
    ("graceful_timeout", "warns"),
    [(19, True), (20, False), (21, False)],  # graceful_timeout < timeout
)
def test_worker_timeout_boundary(graceful_timeout: float, warns: bool) -> None:
    b = Budget(drain_seconds=5, graceful_timeout=graceful_timeout, worker_timeout=20)
    expected = (
        [
            f"graceful_timeout {graceful_timeout} < timeout 20: a request that runs longer "
            f"than {graceful_timeout} s when the graceful stop begins is cut; lower timeout "
            "or raise graceful_timeout (and the grace period with it)"
        ]
        if warns
        else []
    )
    assert b.warnings() == expected


@pytest.mark.parametrize(
    ("prestop", "drain", "warns"),
    [(0, 2, True), (0, 3, False), (1, 2, False), (0, 4, False), (0.5, 2, True)],
)
def test_propagation_boundary(prestop: float, drain: float, warns: bool) -> None:
    """preStop + drain < propagation (3 s): both terms count, equality is enough."""
    b = Budget(
        drain_seconds=drain, graceful_timeout=10, prestop_seconds=prestop, min_propagation_seconds=3
    )
    expected = (
        [
            f"preStop {fmt(prestop)} + drain {fmt(drain)} < propagation 3: new connections "
            "may still arrive after the listeners close; raise ZDT_DRAIN_SECONDS or add a "
            "preStop sleep"
        ]
        if warns
        else []
    )
    assert b.warnings() == expected


@pytest.mark.parametrize(
    ("keepalive", "warns"),
    [
        (2, True),  # Gunicorn's default: nginx and AWS ALB reuse connections idle for 2 s
        (1, True),  # any keep-alive at all races; only 0 turns it off
        (60, True),  # equal: both close at once and race
        (60.5, False),  # longer: the proxy always closes first
        (75, False),  # the ready-made config
        (0, False),  # keep-alive off: nothing to race
    ],
)
def test_keepalive_at_or_below_common_proxy_idle_timeout_warns(
    keepalive: float, warns: bool
) -> None:
    b = Budget(drain_seconds=5, graceful_timeout=10, keepalive_seconds=keepalive)
    expected = (
        [
            f"keepalive {keepalive} <= 60, the idle timeout of the pooling proxies usually in "
            "front (nginx upstream keepalive_timeout, AWS ALB): Gunicorn closes idle "
            "connections first, and a request the proxy sends on one at that moment fails "
            "(502; a POST is lost); raise keepalive above it, e.g. --keep-alive 75"
        ]
        if warns
        else []
    )
    assert (b.warnings(), b.errors()) == (expected, [])


@pytest.mark.parametrize(
    ("keepalive", "idle", "error"),
    [
        (75, 600, True),  # the ready-made value behind a Google Cloud load balancer
        (600, 600, True),
        (620, 600, False),
        (75, 60, False),
        (2, 1, False),  # a proxy that retires connections after 1 s: it closes first
        (0, 60, False),
    ],
)
def test_keepalive_at_or_below_known_proxy_idle_timeout_is_an_error(
    keepalive: float, idle: float, error: bool
) -> None:
    b = Budget(
        drain_seconds=5, graceful_timeout=10, keepalive_seconds=keepalive, proxy_idle_seconds=idle
    )
    expected = (
        [
            f"keepalive {keepalive} <= {idle}, the load balancer's idle timeout: Gunicorn "
            "closes idle connections first, and a request the proxy sends on one at that moment "
            "fails (502; a POST is lost); raise keepalive above it, e.g. "
            f"--keep-alive {idle + 15}"
        ]
        if error
        else []
    )
    # A known idle timeout replaces the common one: no warning beside the error.
    assert (b.errors(), b.warnings()) == (expected, [])


def test_every_warning_is_off_when_its_input_is_unknown() -> None:
    assert Budget(drain_seconds=0, graceful_timeout=0).warnings() == []


@pytest.mark.parametrize(
    ("grace", "drain", "prestop", "margin", "expected"),
    [
        (30, 5, 0, MARGIN_SECONDS, 23),
        (30, 5, 5, MARGIN_SECONDS, 18),
        (30.9, 5, 0, 2, 23),  # floored: Gunicorn wants a whole number
        (30, 5, 0, 0, 25),
        (5, 5, 0, 2, -2),  # nothing fits: the caller reports it
    ],
)
def test_derive_graceful_timeout(
    grace: float, drain: float, prestop: float, margin: float, expected: int
) -> None:
    assert derive_graceful_timeout(grace, drain, prestop, margin) == expected


def test_margin_default_is_two_seconds() -> None:
    assert MARGIN_SECONDS == 2.0
    assert derive_graceful_timeout(30, 5) == 23
    assert Budget(drain_seconds=5, graceful_timeout=23).required_grace_seconds == 30


def test_sum_text_names_every_term() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=23.5, prestop_seconds=1)
    assert b.sum_text() == "preStop 1 + drain 5 + graceful_timeout 23.5 + margin 2 = 31.5"


@pytest.mark.parametrize(
    ("value", "text"), [(5.0, "5"), (2.5, "2.5"), (0.0, "0"), (30, "30"), (0.25, "0.25")]
)
def test_fmt_writes_numbers_as_a_person_does(value: float, text: str) -> None:
    assert fmt(value) == text


def test_timeline_events_in_order_with_prestop_and_grace() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=20, prestop_seconds=3, grace_period_seconds=30)
    assert b.timeline() == [
        (0.0, "pod deleted: endpoint removal starts propagating"),
        (0.0, "preStop sleep 3 s starts"),
        (3, "SIGTERM to the Gunicorn master: readiness 503, traffic still served"),
        (8, "drain ends: listeners closed, workers finish in-flight requests"),
        (28, "graceful_timeout deadline: Gunicorn SIGKILLs remaining workers"),
        (30, "kubelet SIGKILL (grace period ends)"),
    ]


def test_timeline_without_prestop_nor_grace() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=20)
    assert [t for t, _ in b.timeline()] == [0.0, 0, 5, 25]
    assert not any("preStop" in event or "kubelet" in event for _, event in b.timeline())


def test_timeline_sorts_a_grace_period_shorter_than_the_stop() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=20, grace_period_seconds=10)
    assert [t for t, _ in b.timeline()] == [0.0, 0, 5, 10, 25]


def test_timeline_drain_minimum_equal_to_its_maximum_is_a_fixed_drain() -> None:
    b = Budget(drain_seconds=5, graceful_timeout=20, drain_min_seconds=5)
    assert b.timeline() == [
        (0.0, "pod deleted: endpoint removal starts propagating"),
        (0, "SIGTERM to the Gunicorn master: readiness 503, traffic still served"),
        (5, "drain ends: listeners closed, workers finish in-flight requests"),
        (25, "graceful_timeout deadline: Gunicorn SIGKILLs remaining workers"),
    ]


def test_timeline_adaptive_drain_shows_its_minimum_and_maximum() -> None:
    b = Budget(drain_seconds=15, graceful_timeout=20, drain_min_seconds=5, prestop_seconds=1)
    events = b.timeline()
    assert (
        6,
        "drain minimum: the drain ends once no new connection came for the quiet period",
    ) in events
    assert (16, "drain maximum: listeners closed even if traffic still arrives") in events


def test_grace_period_zero_is_reported_as_zero() -> None:
    b = Budget(drain_seconds=0, graceful_timeout=3, grace_period_seconds=0, margin_seconds=0)
    assert b.errors() == [
        "terminationGracePeriodSeconds 0 < preStop 0 + drain 0 + graceful_timeout 3 + margin 0 "
        "= 3; raise it to 3 (drain and preStop alone leave no room for graceful_timeout), so "
        "the kubelet's SIGKILL cannot cut a request"
    ]


# -- problems as data: what the rules and the runtime select and render -------------------

_BASE = {"drain_seconds": 5.0, "graceful_timeout": 20.0}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"grace_period_seconds": 25.0},
            [
                (
                    "grace-period",
                    "error",
                    "terminationGracePeriodSeconds",
                    {"grace": 25.0, "required": 27.0, "fitting": 18},
                )
            ],
        ),
        (
            {"grace_period_seconds": 6.0, "prestop_seconds": 7.0},
            [
                (
                    "grace-period",
                    "error",
                    "terminationGracePeriodSeconds",
                    {"grace": 6.0, "required": 34.0, "fitting": -8},
                ),
                ("prestop-grace", "error", "preStop", {"prestop": 7.0, "grace": 6.0}),
            ],
        ),
        (
            {"worker_timeout": 30.0},
            [("worker-timeout", "warning", "timeout", {"graceful_timeout": 20.0, "timeout": 30.0})],
        ),
        (
            {"min_propagation_seconds": 9.0, "prestop_seconds": 1.0},
            [
                (
                    "propagation",
                    "warning",
                    "ZDT_DRAIN_SECONDS",
                    {"prestop": 1.0, "drain": 5.0, "propagation": 9.0},
                )
            ],
        ),
        (
            {"min_propagation_seconds": 9.0, "drain_seconds": 8.0, "drain_min_seconds": 2.0},
            [
                (
                    "propagation",
                    "warning",
                    "ZDT_DRAIN_MAX_SECONDS",
                    {"prestop": 0.0, "drain": 8.0, "propagation": 9.0},
                )
            ],
        ),
        (
            {"keepalive_seconds": 60.0},
            [("keepalive", "warning", "keepalive", {"keepalive": 60.0, "idle": 60.0})],
        ),
        (
            {"keepalive_seconds": 75.0, "proxy_idle_seconds": 600.0},
            [("keepalive", "error", "keepalive", {"keepalive": 75.0, "idle": 600.0})],
        ),
        ({"keepalive_seconds": 61.0}, []),
        ({"keepalive_seconds": 0.0, "proxy_idle_seconds": 600.0}, []),
    ],
)
def test_problems_carry_kind_severity_setting_and_numbers(
    fields: dict[str, float], expected: list[tuple[str, str, str, dict[str, float]]]
) -> None:
    """The rules select by kind and read the numbers; nothing parses the prose."""
    problems = Budget(**{**_BASE, **fields}).problems()  # type: ignore[arg-type]
    assert [(p.kind, p.severity, p.setting, dict(p.numbers)) for p in problems] == expected
    assert all(p.message == f"{p.problem}; {p.fix}" for p in problems)


def test_errors_come_before_warnings_and_split_by_severity() -> None:
    b = Budget(5.0, 20.0, grace_period_seconds=25.0, worker_timeout=30.0, keepalive_seconds=2.0)
    assert [p.kind for p in b.problems()] == ["grace-period", "worker-timeout", "keepalive"]
    assert b.errors() == [b.problems()[0].message]
    assert b.warnings() == [p.message for p in b.problems()[1:]]
