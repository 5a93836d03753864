"""The helpers the rules read manifests with, as tables (test_rule_messages.py has the messages).

Where an Ingress or HTTPRoute sends traffic (Kubernetes networking/v1 and Gateway API v1
field names), a proxy's own drain flag, and when ``python ... -m gunicorn`` is Gunicorn's
own process.
"""

from __future__ import annotations

from typing import Any

import pytest

from gunicorn_zdt.check.rules import containers, routing
from gunicorn_zdt.k8s import Document, commands


def ingress(spec: Any) -> Document:
    return Document("i.yaml", {"kind": "Ingress", "metadata": {"name": "web"}, "spec": spec})


def route(spec: Any) -> Document:
    return Document("r.yaml", {"kind": "HTTPRoute", "metadata": {"name": "web"}, "spec": spec})


def backend(name: str, port: dict[str, Any]) -> dict[str, Any]:
    return {"service": {"name": name, "port": port}}


@pytest.mark.parametrize(
    ("doc", "backends"),
    [
        (ingress(None), []),
        (
            ingress({"defaultBackend": backend("app", {"number": 80})}),
            [("spec.defaultBackend", "app", 80)],
        ),
        (
            ingress({"defaultBackend": backend("app", {"name": "http"})}),
            [("spec.defaultBackend", "app", "http")],
        ),
        (  # a resource backend (no Service), or no port given
            ingress({"defaultBackend": {"resource": {"kind": "Bucket", "name": "static"}}}),
            [],
        ),
        (
            ingress({"defaultBackend": {"service": {"name": "app"}}}),
            [("spec.defaultBackend", "app", None)],
        ),
        (
            ingress(
                {
                    "rules": [
                        {"host": "a.example.com"},  # no http: nothing routed
                        {
                            "http": {
                                "paths": [
                                    {"path": "/", "backend": backend("app", {"number": 80})},
                                    {"path": "/static", "backend": {"resource": {"name": "s"}}},
                                    {"path": "/x"},
                                    {"path": "/m", "backend": backend("app", {"name": "metrics"})},
                                ]
                            }
                        },
                    ]
                }
            ),
            [
                ("spec.rules[1].http.paths[0].backend", "app", 80),
                ("spec.rules[1].http.paths[3].backend", "app", "metrics"),
            ],
        ),
        (
            ingress(
                {
                    "defaultBackend": backend("other", {"number": 8080}),
                    "rules": [{"http": {"paths": [{"backend": backend("app", {"number": 80})}]}}],
                }
            ),
            [
                ("spec.defaultBackend", "other", 8080),
                ("spec.rules[0].http.paths[0].backend", "app", 80),
            ],
        ),
        (route(None), []),
        (route({"rules": [{}]}), []),
        (
            route(
                {
                    "rules": [
                        {"backendRefs": [{"name": "app", "port": 80}]},
                        {
                            "backendRefs": [
                                {
                                    "kind": "ServiceImport",
                                    "name": "app",
                                    "port": 81,
                                },  # not a Service
                                {"kind": "Service", "name": "app", "port": 82},
                                {"group": "", "name": "other"},
                            ]
                        },
                    ]
                }
            ),
            [
                ("spec.rules[0].backendRefs[0]", "app", 80),
                ("spec.rules[1].backendRefs[1]", "app", 82),
                ("spec.rules[1].backendRefs[2]", "other", None),
            ],
        ),
        (  # an HTTPRoute has no defaultBackend, an Ingress no backendRefs
            route({"defaultBackend": backend("app", {"number": 80})}),
            [],
        ),
        (ingress({"rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}), []),
        (  # neither an Ingress nor an HTTPRoute
            Document(
                "g.yaml",
                {
                    "kind": "GRPCRoute",
                    "spec": {"rules": [{"backendRefs": [{"name": "app", "port": 80}]}]},
                },
            ),
            [],
        ),
    ],
)
def test_route_backends(doc: Document, backends: list[tuple[str, Any, Any]]) -> None:
    assert list(routing._route_backends(doc)) == backends


@pytest.mark.parametrize(
    ("words", "seconds"),
    [
        (["--max-sigterm-delay=30s"], 30.0),
        (["--port=5432", "--max-sigterm-delay=30", "project:region:db"], 30.0),
        (["--max-sigterm-delay", "45s", "project:region:db"], 45.0),
        (["project:region:db", "--max-sigterm-delay", "45s"], 45.0),
        (["--max-sigterm-delay=1.5s"], 1.5),
        (["--max-sigterm-delay=5=6"], None),  # not a number
        (["--max-sigterm-delay"], None),  # the value is missing
        (["--max-sigterm-delay", "--port=5432"], None),
        (["--max-sigterm-delay=soon"], None),
        (["--port=5432", "project:region:db"], None),
        ([], None),
        (["--max-sigterm-delay=10s", "--max-sigterm-delay=20s"], 10.0),  # the first counts
    ],
)
def test_own_drain_seconds(words: list[str], seconds: float | None) -> None:
    assert containers._own_drain_seconds(words) == seconds


@pytest.mark.parametrize(
    ("words", "runs"),
    [
        (["python", "-m", "gunicorn", "app:app"], True),
        (["python3", "-u", "-m", "gunicorn"], True),
        (["python3", "-uB", "-m", "gunicorn"], True),
        (["python3", "-W", "ignore", "-X", "dev", "-m", "gunicorn"], True),
        (["python3", "-X", "-m", "-m", "gunicorn"], True),  # -X's value is "-m"
        (["python3", "-W", "-m", "gunicorn"], False),  # -W takes "-m": gunicorn is a script
        (["python", "-m", "honcho", "gunicorn"], False),
        (["python", "-m"], False),
        (["python", "run.py", "-m", "gunicorn"], False),
        (["python", "-u"], False),
        (["python3", "-W"], False),  # an option's value missing at the end: not a crash
        (["python"], False),
    ],
)
def test_python_runs_gunicorn(words: list[str], runs: bool) -> None:
    assert commands.python_runs_gunicorn(words) is runs


@pytest.mark.parametrize(
    ("options", "group"),
    [
        ({"-g"}, True),
        ({"-s", "-g"}, True),
        ({"-sg"}, True),  # tini's flags without a value, clustered
        ({"-vvg"}, True),
        ({"-pg"}, False),  # -p takes a value: -p g, a parent-death signal, not -g
        ({"-eg"}, False),
        ({"-kg"}, False),
        ({"-s", "-v"}, False),
        ({"--group"}, False),
        ({"--verbose", "-g"}, True),  # a long option is skipped, not the end
        (set(), False),
    ],
)
def test_tini_process_group(options: set[str], group: bool) -> None:
    assert commands.tini_process_group(options) is group


@pytest.mark.parametrize(
    ("command", "args", "argv"),
    [
        (["gunicorn", "-c", "c.py", "app:app"], None, ["-c", "c.py", "app:app"]),
        (["/usr/local/bin/gunicorn"], ["app:app"], ["app:app"]),
        (["python", "-m", "gunicorn", "app:app"], None, ["app:app"]),
        (["tini", "--", "gunicorn", "-b", ":80"], None, ["-b", ":80"]),
        (["sh", "-c", "exec gunicorn -c c.py app:app"], None, ["-c", "c.py", "app:app"]),
        (["sh", "-c", "gunicorn app:app && echo done"], None, ["app:app"]),
        (["sh", "-c", "gunicorn app:app ; echo"], None, ["app:app"]),
        (["bash", "-c", "migrate || gunicorn app:app | tee"], None, ["app:app"]),
        (["sh", "-c", "gunicorn app:app || echo failed"], None, ["app:app"]),
        (["sh", "-c", "gunicorn 'unclosed"], None, None),
        (["./start.sh"], ["gunicorn-ish"], None),
        (["gunicorn"], None, []),
        (None, None, None),
    ],
)
def test_gunicorn_argv(command: list[str] | None, args: list[str] | None, argv: Any) -> None:
    """Gunicorn's own arguments, wherever the container's command line starts it."""
    assert commands.gunicorn_argv(command, args) == argv


def test_install_record_is_found_on_any_of_its_hooks() -> None:
    """The contract check reads: install() stamps each of its hooks; any one of them tells."""
    from types import SimpleNamespace

    from gunicorn_zdt.core.refusals import HOOK_NAMES, Installed, installed_in, stamp_installed

    def hook() -> None:
        """A stand-in for one of install()'s hooks."""

    record = Installed(None, ["bad"], {"drain_seconds": 5}, True)
    namespace: dict[str, Any] = {name: (lambda: None) for name in HOOK_NAMES[:-1]}
    namespace["on_exit"] = hook
    namespace["other"] = hook
    assert installed_in(namespace) is None
    stamp_installed(namespace, record)
    assert all(getattr(namespace[name], "zdt_installed", None) is record for name in HOOK_NAMES)
    for name in HOOK_NAMES:  # only the last hook of install()'s left: still found
        only = {n: (lambda: None) for n in HOOK_NAMES}
        only[name] = namespace[name]
        assert installed_in(only) is record
        assert installed_in(SimpleNamespace(**only)) is record
    assert installed_in({"on_starting": SimpleNamespace(zdt_installed="not a record")}) is None
    assert installed_in(SimpleNamespace()) is None
    stamp_installed({"on_starting": None}, record)  # a hook left unset: nothing to stamp


@pytest.mark.parametrize(
    ("name", "names", "close"),
    [
        ("app-v2", {"app"}, True),
        ("webapp", {"web-app"}, False),  # not this workload's name (mine is "app")
        ("other", {"app"}, False),
        ("app-v2", {"app", "app-v"}, False),  # closer to another workload
        ("ap", {"app"}, True),
        ("app-v2", {"app", "xapp"}, True),  # another one close too, but mine is the closest
    ],
)
def test_hpa_target_near_miss(name: str, names: set[str], close: bool) -> None:
    assert routing._close(name, "app", names) is close


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        ("ZDT_DRAIN_SECONDS=20 > ZDT_DRAIN_MAX_SECONDS=15: the minimum ...", "ZDT_DRAIN_SECONDS"),
        ("ZDT_DRAIN_SECONDS='1e9' is over the limit of 3600 s", "ZDT_DRAIN_SECONDS"),
        ("ZDT_PROBE_PREFIX must start with /", "ZDT_PROBE_PREFIX"),
        ("your Gunicorn hook when_ready takes 2 argument(s); ...", "hooks"),
        ("drain_seconds=abc is not a number", "hooks"),
        ("", "hooks"),
    ],
)
def test_the_setting_a_refusal_names(error: str, setting: str) -> None:
    from gunicorn_zdt.core.refusals import _setting_in

    assert _setting_in(error) == setting


@pytest.mark.parametrize(
    ("worker", "timeout", "limit", "bind", "refused"),
    [
        ("sync", 20, 10.0, ("0.0.0.0", 8081), True),  # = timeout/2: an idle worker's interval
        ("sync", 20, 10.5, ("0.0.0.0", 8081), False),
        ("sync", 20, 10.0, None, False),  # no probe listener: nothing reads the heartbeat
        ("sync", 20, None, ("0.0.0.0", 8081), False),  # unset: Gunicorn's timeout
        ("gthread", 20, 1.0, ("0.0.0.0", 8081), False),  # beats every second
        ("sync", 0, 1.0, ("0.0.0.0", 8081), False),  # no timeout: no idle interval
    ],
)
def test_heartbeat_refusal(
    worker: str, timeout: int, limit: float | None, bind: Any, refused: bool
) -> None:
    from types import SimpleNamespace

    from gunicorn_zdt.core.plan import DrainPlan
    from gunicorn_zdt.core.refusals import heartbeat_refusal

    plan = DrainPlan(5.0, 0.0, None, 3.0, probe_bind=bind, heartbeat_timeout_seconds=limit)
    line = heartbeat_refusal(plan, SimpleNamespace(worker_class_str=worker, timeout=timeout))
    assert (line is not None) is refused
    if refused:
        assert line == (
            "gunicorn-zdt: ZDT_HEARTBEAT_TIMEOUT_SECONDS=10 <= timeout/2 = 10: an idle sync "
            "worker reports its heartbeat only every timeout/2 s, so liveness would fail on an "
            "idle pod; raise it above 10 (or unset it: default timeout 20)"
        )


def test_startup_refusals_in_on_startings_order() -> None:
    """Each refusal as data (kind, setting, line), in the order on_starting checks them."""
    from types import SimpleNamespace

    from gunicorn_zdt.core.plan import DrainPlan
    from gunicorn_zdt.core.refusals import HOOK_NAMES, integration_problem, startup_refusals

    ours = SimpleNamespace(zdt_hook=True)
    cfg = SimpleNamespace(
        worker_class_str="sync", timeout=20, graceful_timeout=30, keepalive=2,
        **{name: ours for name in HOOK_NAMES},
    )  # fmt: skip
    cfg.pre_request = lambda worker, req: None  # defined after install()
    plan = DrainPlan(5.0, 0.0, 20.0, 3.0, probe_bind=("0.0.0.0", 8081), heartbeat_timeout_seconds=9)
    got = [(r.kind, r.setting) for r in startup_refusals(cfg, plan, [])]
    assert got == [
        ("hooks", "hooks"),
        ("budget", "ZDT_GRACE_PERIOD_SECONDS"),
        ("heartbeat", "ZDT_HEARTBEAT_TIMEOUT_SECONDS"),
    ]
    errors = ["ZDT_DRAIN_SECONDS=9 > ZDT_DRAIN_MAX_SECONDS=5: ...", "a second one, never shown"]
    assert [(r.kind, r.setting, r.line) for r in startup_refusals(cfg, None, errors)] == [
        ("hooks", "hooks", integration_problem(cfg)),
        ("setting", "ZDT_DRAIN_SECONDS", f"gunicorn-zdt: {errors[0]}"),
    ]
    cfg.pre_request = ours
    assert startup_refusals(cfg, None, []) == []


def test_integration_problem_without_any_hook_of_ours() -> None:
    from types import SimpleNamespace

    from gunicorn_zdt.core.refusals import integration_problem

    assert integration_problem(SimpleNamespace(on_starting=SimpleNamespace(zdt_hook=1))) == (
        "gunicorn-zdt: Gunicorn hook(s) when_ready, pre_fork, post_fork, post_worker_init, "
        "pre_request, post_request, on_exit defined after install(globals()) replaced ours, "
        "which turns the drain off; define your hooks before install(globals()) (it chains "
        "them) and call it last"
    )
    assert integration_problem(SimpleNamespace()) == (
        "gunicorn-zdt: the Gunicorn config does not call install(globals()) (or every hook was "
        "redefined after it): add `from gunicorn_zdt.hooks import install` and "
        "`install(globals())` as its last line"
    )
