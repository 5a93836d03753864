"""``gunicorn-zdt check`` reads the stream as the cluster does, and refuses what Gunicorn will.

Realistic streams (tests/manifests/stream/: a Helm bundle with ConfigMaps and Secrets, mesh
injection, cloud load balancers, a StatefulSet with its peer Service): each broken one
prints exactly its lines, each tuned one passes ``--strict``. The start-up refusals are
compared with a real Gunicorn's ``Error:`` line for the same config and env. The env
resolution, mesh and load-balancer readers have their own tables.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from gunicorn_zdt import cli
from gunicorn_zdt.check import lb_detect
from gunicorn_zdt.check.app_config import local_config_path
from gunicorn_zdt.k8s import Document, Workload, workloads
from gunicorn_zdt.k8s.env import EnvSources, expand, resolve_env, service_links
from gunicorn_zdt.k8s.mesh import injected_proxies

MANIFESTS = Path(__file__).resolve().parent / "manifests"
STREAM = MANIFESTS / "stream"
CONF = str(MANIFESTS / "gunicorn.conf.py")
C = "spec.template.spec.containers[web]"

#: Each broken stream and exactly the lines it prints ({f}: its path).
STREAM_CASES: dict[str, list[str]] = {
    "helm-bundle-broken": [
        f"{{f}}: Deployment/web: {C}.envFrom[ConfigMap/web-zdt].ZDT_DRAIN_SECONDS: "
        "error[startup]: gunicorn-zdt: ZDT_DRAIN_SECONDS=5 > ZDT_DRAIN_MAX_SECONDS=4: the "
        "minimum drain exceeds the maximum; raise ZDT_DRAIN_MAX_SECONDS to at least 5 or lower "
        "ZDT_DRAIN_SECONDS",
        "{f}: Service/web: spec.selector: error[selector]: selects app.kubernetes.io/instance=web, "
        "app.kubernetes.io/name=chart, app.kubernetes.io/version=1.0.1, which matches no pod "
        "template in the input (Deployment/web's pods carry app.kubernetes.io/instance=web, "
        "app.kubernetes.io/name=chart): the Service has no endpoints once the rollout replaced "
        "the pods, a total outage; select only labels spec.template.metadata.labels has",
    ],
    "istio-default": [
        "{f}: Deployment/app: Namespace.metadata.labels[istio-injection]: warning[sidecar]: "
        "istio-proxy (injected by istio) carries the app's traffic for 5 s after SIGTERM "
        "(proxy.istio.io/config terminationDrainDuration), less than Gunicorn's graceful "
        "deadline (preStop + drain + graceful_timeout = 28 s): the app's connections through it "
        'end mid-drain; set terminationDrainDuration: "28s" in the proxy.istio.io/config '
        'annotation, or sidecar.istio.io/nativeSidecar: "true" (a native sidecar stops after '
        "the app)",
    ],
    "alb-default": [
        f"{{f}}: Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + "
        "drain 5 < propagation 30 (aws-alb (Ingress/app): health check 15 s x 2 + sync 0): new "
        "connections may still arrive after the listeners close; add a native preStop sleep of "
        "25 s (lifecycle.preStop.sleep.seconds, ZDT_PRESTOP_SECONDS and the grace period with "
        "it), or lower the load balancer's health-check interval x unhealthy threshold",
    ],
    "not-ready-traffic": [
        "{f}: Service/app: spec.publishNotReadyAddresses: error[not-ready-addresses]: true on a "
        "Service that carries traffic to the app: its endpoints ignore readiness, so the "
        "drain's 503 removes the pod from nothing and new pods get traffic before they can "
        "serve; remove it (keep it only on a headless Service for peer discovery, clusterIP: "
        "None)",
    ],
}
#: Valid streams the rules must leave alone (``--strict``).
STREAM_PASSING = ("helm-bundle", "istio-tuned", "linkerd-tuned", "alb-tuned", "statefulset-peers")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_broken_stream_gives_exactly_its_lines(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(STREAM / f"{name}.yaml")
    code, out, _ = run(["check", "--strict", "--config", CONF, path], capsys)
    assert out == [line.replace("{f}", path) for line in STREAM_CASES[name]]
    assert code == 1


@pytest.mark.parametrize("name", STREAM_PASSING)
def test_valid_stream_is_clean_even_strict(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(STREAM / f"{name}.yaml")
    code, out, err = run(["check", "--strict", "--config", CONF, path], capsys)
    assert (code, out) == (0, [])
    assert err[-1] == "gunicorn-zdt check: 0 error(s), 0 warning(s) in 1 workload(s)"


def test_helm_test_pod_is_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(STREAM / "helm-bundle.yaml")
    _, _, err = run(["check", "--config", CONF, path], capsys)
    assert err[0] == f"{path}: Pod/web-test-connection: skipped: the check does not read Pod"


def _good(tmp_path: Path, env: dict[str, str]) -> str:
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    entries = docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    entries += [{"name": k, "value": v} for k, v in env.items()]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_drain_minimum_above_maximum_is_one_error_not_port_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the defaults stood in for the refused plan: no probe listener, three probe-port
    errors and nothing about the pair. Now: the runtime's one line, and the ports are right."""
    path = _good(tmp_path, {"ZDT_DRAIN_SECONDS": "10", "ZDT_DRAIN_MAX_SECONDS": "8"})
    code, out, _ = run(["check", "--strict", "--config", CONF, path], capsys)
    assert (code, [line.split(": ", 3)[3] for line in out]) == (
        1,
        [
            "error[startup]: gunicorn-zdt: ZDT_DRAIN_SECONDS=10 > ZDT_DRAIN_MAX_SECONDS=8: the "
            "minimum drain exceeds the maximum; raise ZDT_DRAIN_MAX_SECONDS to at least 10 or "
            "lower ZDT_DRAIN_SECONDS",
        ],
    )


def test_config_sees_the_container_env_never_the_callers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable exported in the shell that runs check (CI) is not in the container."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        textwrap.dedent(
            """
            import os
            from gunicorn_zdt.conf import *  # noqa
            bind = [os.environ.get("APP_BIND_HOST", "0.0.0.0") + ":8080"]
            worker_class = "gthread"
            threads = 4
            timeout = 20
            install(globals())  # noqa
            """
        )
    )
    path = str(MANIFESTS / "good.yaml")
    monkeypatch.setenv("APP_BIND_HOST", "127.0.0.1")
    monkeypatch.setenv("ZDT_DRAIN_SECONDS", "40")
    assert run(["check", "--strict", "--config", str(conf), path], capsys)[:2] == (0, [])


def test_install_arguments_are_named_when_the_value_came_from_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "args.conf.py"
    conf.write_text(
        "from gunicorn_zdt.conf import *  # noqa\n"
        'worker_class = "gthread"\nthreads = 4\ntimeout = 20\n'
        "install(globals(), grace_period_seconds=40)  # noqa\n"
    )
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    entries = docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    entries[:] = [e for e in entries if e["name"] != "ZDT_GRACE_PERIOD_SECONDS"]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    _, out, _ = run(["check", "--config", str(conf), str(path)], capsys)
    assert [line for line in out if "[zdt-env]" in line] == [
        f"{path}: Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: error[zdt-env]: "
        f"install(grace_period_seconds=...) in {conf} 40 != terminationGracePeriodSeconds 30: "
        "Gunicorn derives graceful_timeout for the wrong grace period; pass "
        'grace_period_seconds=30 to install(), or set ZDT_GRACE_PERIOD_SECONDS: "30" (the env '
        "wins over the argument)"
    ]


# --- the same line as Gunicorn's own refusal ---------------------------------------------

REFUSALS = [
    pytest.param("", {"ZDT_DRAIN_SECONDS": "20", "ZDT_DRAIN_MAX_SECONDS": "15"}, id="pair"),
    pytest.param(
        "",
        {"ZDT_DRAIN_MAX_SECONDS": "8", "ZDT_DRAIN_QUIET_SECONDS": "9"},
        id="quiet-above-maximum",
    ),
    pytest.param(
        'worker_class = "sync"\ntimeout = 20\n',
        {"ZDT_PROBE_BIND": "0.0.0.0:0", "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "10"},
        id="heartbeat",
    ),
    pytest.param(
        "from gunicorn_zdt.hooks import install\ninstall(globals())\n"
        "def pre_request(worker, req):\n    pass\n",
        {},
        id="hook-after-install",
    ),
]


@pytest.mark.parametrize(("config", "env"), REFUSALS)
def test_check_prints_the_line_gunicorn_refuses_with(
    gunicorn: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config: str,
    env: dict[str, str],
) -> None:
    """A real Gunicorn with this config and env exits 1 with one Error: line; check, given
    the same config and a container with the same env, prints that line as its finding."""
    server = gunicorn(config=config, env=env, hooks="install(" not in config)
    server.start(wait_ready=False)
    assert server.wait_exit(30) == 1, server.log()
    errors = [line for line in server.log().splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, server.log()
    path = _good(tmp_path, env)
    _, out, _ = run(["check", "--config", str(server.conf_path), path], capsys)
    mine = [line.split("error[startup]: ", 1)[1] for line in out if "[startup]" in line]
    assert mine == [errors[0].removeprefix("Error: ")]


# --- env as the kubelet builds it --------------------------------------------------------


def _doc(kind: str, name: str, **body: Any) -> Document:
    return Document(
        "s.yaml", {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **body}
    )


def sources() -> EnvSources:
    """Built in each test (not at import), so that mutation testing sees the reader run."""
    return EnvSources.of(
        [
            _doc("ConfigMap", "base", data={"A": "1", "B": "from-base", "PORT": "8000"}),
            _doc("ConfigMap", "late", data={"B": "from-late"}),
            _doc("ConfigMap", "odd", data=["not", "a", "mapping"]),
            _doc(
                "Secret",
                "db",
                data={
                    "bad": "%%%",  # first: one bad value does not hide the ones after it
                    "url": base64.b64encode(b"postgres://db").decode(),
                    "user": base64.b64encode(b"overridden").decode(),
                    "binary": base64.b64encode(bytes([255, 254])).decode(),
                },
                stringData={"user": "app"},
            ),
            _doc("Secret", "odd", data="zz", stringData=["x"]),
        ]
    )


@pytest.mark.parametrize(
    ("container", "values", "unknown", "hidden"),
    [
        pytest.param(
            {"env": [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}]},
            {"X": "2"},
            {},
            (),
            id="last-duplicate-wins",
        ),
        pytest.param(
            {
                "envFrom": [{"configMapRef": {"name": "base"}}, {"configMapRef": {"name": "late"}}],
                "env": [{"name": "A", "value": "env"}],
            },
            {"A": "env", "B": "from-late", "PORT": "8000"},
            {},
            (),
            id="later-source-wins-env-wins-over-envFrom",
        ),
        pytest.param(
            {"envFrom": [{"prefix": "APP_", "configMapRef": {"name": "late"}}]},
            {"APP_B": "from-late"},
            {},
            (),
            id="prefix",
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "db"}}]},
            {"url": "postgres://db", "user": "app"},
            {},
            (),
            id="secret-base64-and-stringData",
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "odd"}}, {"configMapRef": {"name": "odd"}}]},
            {},
            {},
            (),
            id="odd-data-is-empty",
        ),
        pytest.param(
            {
                "envFrom": [
                    {"secretRef": {"name": "gone"}},
                    {"secretRef": {"name": "maybe", "optional": True}},
                    {"configMapRef": {"name": "maybe", "optional": False}},
                    {"configMapRef": {}},
                    "not a mapping",
                ]
            },
            {},
            {},
            ("Secret/gone", "ConfigMap/maybe"),
            id="missing-secret-and-required-configmap",
        ),
        pytest.param(
            {
                "envFrom": [
                    {"configMapRef": {"name": "gone"}},
                    {"configMapRef": {"name": "maybe", "optional": True}},
                ]
            },
            {},
            {},
            ("ConfigMap/gone",),
            id="missing-source-is-hidden-optional-is-not",
        ),
        pytest.param(
            {
                "env": [
                    "not a mapping",  # skipped, and the list goes on
                    {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "base", "key": "A"}}},
                    {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "base", "key": "Z"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "url"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "ODD", "valueFrom": "a string"},
                    {"name": "NONE", "valueFrom": {"somethingElse": {}}},
                    {"name": "SK", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                ]
            },
            {"K": "1", "SK": "postgres://db"},
            {
                "ODD": "valueFrom",
                "NONE": "valueFrom",
                "M": "ConfigMap/base, which has no key Z",
                "NS": "the pod's metadata.namespace, known only when it runs",
                "S": "Secret/nope, which is not in the input",
                "IP": "the pod's status.podIP, known only when it runs",
                "CPU": "the container's limits.cpu, known only when it runs",
            },
            (),
            id="valueFrom",
        ),
        pytest.param(
            {
                "envFrom": [
                    "not a mapping",  # each skipped entry is one entry: the next is read
                    {"neither": {"name": "base"}},
                    {"configMapRef": {"name": "gone"}},
                    {"configMapRef": {"name": "late"}},
                ]
            },
            {"B": "from-late"},
            {},
            ("ConfigMap/gone",),
            id="skipped-sources-do-not-end-the-list",
        ),
        pytest.param(
            {
                "envFrom": [{"configMapRef": {"name": "base"}}],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "no", "key": "A"}}},
                    {"name": "B", "valueFrom": "junk"},
                    {"name": "B", "value": "set"},
                ],
            },
            {"B": "set", "PORT": "8000"},
            {"A": "ConfigMap/no, which is not in the input"},
            (),
            id="an-unknown-env-hides-envFrom-a-later-value-clears-it",
        ),
        pytest.param(
            {
                "env": [
                    {"name": "HOST", "value": "0.0.0.0"},
                    {"name": "BIND", "value": "$(HOST):$(PORT)"},
                    {"name": "LIT", "value": "$$(HOST)"},
                ]
            },
            {"HOST": "0.0.0.0", "BIND": "0.0.0.0:$(PORT)", "LIT": "$(HOST)"},
            {},
            (),
            id="dependent-values",
        ),
    ],
)
def test_env_as_the_kubelet_resolves_it(
    container: dict[str, Any], values: dict[str, str], unknown: dict[str, str], hidden: tuple
) -> None:
    env = resolve_env(container, None, sources(), "c")
    assert (dict(env.values), dict(env.unknown), env.hidden) == (values, unknown, hidden)


def test_references_are_read_in_the_pods_namespace() -> None:
    here = EnvSources.of(
        [
            Document(
                "s",
                {
                    "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "shop"},
                    "data": {"A": "shop"},
                },
            ),
            Document(
                "s", {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"A": "default"}}
            ),
        ]
    )
    ref = {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "A"}}}
    assert resolve_env({"env": [ref]}, "shop", here, "c").values == {"A": "shop"}
    assert resolve_env(
        {"envFrom": [{"configMapRef": {"name": "c"}}]}, "shop", here, "c"
    ).values == {"A": "shop"}
    assert resolve_env({"env": [ref]}, "other", here, "c").unknown == {
        "A": "ConfigMap/c, which is not in the input"
    }


def test_field_ref_namespace_is_the_objects() -> None:
    ref = {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    assert resolve_env({"env": [ref]}, "shop", sources(), "c").values == {"NS": "shop"}


def test_command_and_args_expand_the_env() -> None:
    """``$(VAR)`` in command/args: what the kubelet starts (a kind: List with its ConfigMap)."""
    stream = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"CONF": "g.py"},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "app"},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "command": ["gunicorn", "-c", "$(CONF)"],
                                    "args": ["$(APP)", "$(MISSING)"],
                                    "envFrom": [{"configMapRef": {"name": "c"}}],
                                    "env": [{"name": "APP", "value": "app:wsgi"}],
                                }
                            ]
                        }
                    }
                },
            },
        ],
    }
    from gunicorn_zdt.k8s import parse_documents

    (w,) = [
        w
        for w in workloads(parse_documents(yaml.safe_dump(stream), "s"))
        if isinstance(w, Workload)
    ]
    assert (w.command, w.args) == (["gunicorn", "-c", "g.py"], ["app:wsgi", "$(MISSING)"])
    assert expand("$(A)$$(A)$(B)", {"A": "x"}) == "x$(A)$(B)"


@pytest.mark.parametrize(
    ("config", "working_dir", "local"),
    [
        ("/app/gunicorn.conf.py", "/app", "gunicorn.conf.py"),
        ("/srv/gunicorn.conf.py", "/app", "/srv/gunicorn.conf.py"),  # not under workingDir
        ("gunicorn.conf.py", "/app", "gunicorn.conf.py"),  # relative: the current directory
        ("python:gunicorn_zdt.conf", "/app", "python:gunicorn_zdt.conf"),
        (__file__, "/", __file__),  # exists here: read as is
    ],
)
def test_config_path_as_the_container_sees_it(config: str, working_dir: str, local: str) -> None:
    assert local_config_path(config, working_dir) == local


# --- injected mesh proxies and load balancers from annotations ---------------------------


@pytest.mark.parametrize(
    ("labels", "annotations", "ns_labels", "ns_annotations", "found"),
    [
        ({}, {}, {}, {}, []),
        ({"sidecar.istio.io/inject": "true"}, {}, {}, {}, [("istio", False, 5.0, False)]),
        ({}, {"sidecar.istio.io/inject": "false"}, {"istio-injection": "enabled"}, {}, []),
        ({}, {}, {"istio.io/rev": "1-24"}, {}, [("istio", False, 5.0, False)]),
        (
            {},
            {
                "sidecar.istio.io/inject": "true",
                "proxy.istio.io/config": "terminationDrainDuration: 1m",
            },
            {},
            {},
            [("istio", False, 60.0, False)],
        ),
        (
            {},
            {
                "sidecar.istio.io/inject": "true",
                "sidecar.istio.io/nativeSidecar": "true",
                "proxy.istio.io/config": "proxyMetadata: {EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true'}",
            },
            {},
            {},
            [("istio", True, 5.0, True)],
        ),
        ({}, {}, {}, {"linkerd.io/inject": "enabled"}, [("linkerd", False, 0.0, False)]),
        (
            {},
            {"sidecar.istio.io/inject": "true", "proxy.istio.io/config": "[not, a, mapping]"},
            {},
            {},
            [("istio", False, 5.0, False)],
        ),
        (
            {},
            {"sidecar.istio.io/inject": "true", "proxy.istio.io/config": "{unclosed"},
            {},
            {},
            [("istio", False, 5.0, False)],
        ),
        (
            {},
            {
                "sidecar.istio.io/inject": "TRUE",
                "proxy.istio.io/config": "terminationDrainDuration: 2h\nproxyMetadata: [x]",
            },
            {},
            {},
            [("istio", False, 7200.0, False)],
        ),
        (
            {},
            {
                "sidecar.istio.io/inject": "true",
                "proxy.istio.io/config": (
                    "proxyMetadata: {EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'TRUE', "
                    "MINIMUM_DRAIN_DURATION: 1.5m}"
                ),
            },
            {},
            {},
            [("istio", False, 90.0, True)],
        ),
        (
            {},
            {
                "sidecar.istio.io/inject": "true",
                "proxy.istio.io/config": "terminationDrainDuration: soon",
            },
            {},
            {},
            [("istio", False, 5.0, False)],
        ),
        (
            {},
            {
                "linkerd.io/inject": "enabled",
                "config.alpha.linkerd.io/proxy-wait-before-exit-seconds": "30",
                "sidecar.istio.io/inject": "true",
                "proxy.istio.io/config": "terminationDrainDuration: 45",
            },
            {},
            {},
            [("istio", False, 45.0, False), ("linkerd", False, 30.0, False)],
        ),
        ({}, {"linkerd.io/inject": "disabled"}, {}, {"linkerd.io/inject": "enabled"}, []),
        (
            {},
            {
                "linkerd.io/inject": "enabled",
                "config.alpha.linkerd.io/proxy-wait-before-exit-seconds": "500ms",
                "config.alpha.linkerd.io/proxy-enable-native-sidecar": "true",
            },
            {},
            {},
            [("linkerd", True, 0.5, False)],
        ),
    ],
)
def test_injected_proxies(
    labels: dict[str, str],
    annotations: dict[str, str],
    ns_labels: dict[str, str],
    ns_annotations: dict[str, str],
    found: list[tuple[str, bool, float, bool]],
) -> None:
    proxies = injected_proxies(labels, annotations, ns_labels, ns_annotations)
    assert [(p.mesh, p.native, p.stays_seconds, p.exits_when_idle) for p in proxies] == found
    names = {"istio": "istio-proxy", "linkerd": "linkerd-proxy"}
    assert [p.name for p in proxies] == [names[p.mesh] for p in proxies]
    for p in proxies:
        assert (
            p.setting
            == {
                (True, "istio"): "proxy.istio.io/config proxyMetadata.MINIMUM_DRAIN_DURATION",
                (False, "istio"): "proxy.istio.io/config terminationDrainDuration",
                (False, "linkerd"): "config.alpha.linkerd.io/proxy-wait-before-exit-seconds",
            }[(p.exits_when_idle, p.mesh)]
        )


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (" 7 ", 7.0), (12, 12.0),
     ("1.5s", 1.5), ("soon", None), ("-3s", None), (True, None), (None, None), ("3d", None)],
)  # fmt: skip
def test_mesh_durations(raw: object, seconds: float | None) -> None:
    from gunicorn_zdt.k8s.mesh import _seconds

    assert _seconds(raw) == seconds


def _stream(*extra: dict[str, Any]) -> tuple[Workload, list[Document]]:
    docs = [Document("s", o) for o in yaml.safe_load_all((MANIFESTS / "good.yaml").read_text())]
    docs += [Document("s", o) for o in extra]
    (w,) = [w for w in workloads(docs) if isinstance(w, Workload)]
    return w, docs


NLB = "service.beta.kubernetes.io/aws-load-balancer-"


def _lb_service(notes: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "public", "annotations": notes},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "app"},
            "ports": [{"port": 80, "targetPort": "http"}],
        },
    }


@pytest.mark.parametrize(
    ("extra", "found"),
    [
        ((), []),
        ((_lb_service({NLB + "type": "nlb-ip"}),), [("aws-nlb", "Service/public", 10.0, 3, 300.0)]),
        (
            (
                _lb_service(
                    {
                        NLB + "type": "external",
                        NLB + "nlb-target-type": "ip",
                        NLB + "healthcheck-interval": "5",
                        NLB + "healthcheck-unhealthy-threshold": "2",
                        NLB + "target-group-attributes": "deregistration_delay.timeout_seconds=45",
                    }
                ),
            ),
            [("aws-nlb", "Service/public", 5.0, 2, 45.0)],
        ),
        ((_lb_service({NLB + "type": "external", NLB + "nlb-target-type": "instance"}),), []),
        (
            (
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "IngressClass",
                    "metadata": {"name": "public"},
                    "spec": {"controller": "ingress.k8s.aws/alb"},
                },
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "metadata": {
                        "name": "web",
                        "annotations": {"alb.ingress.kubernetes.io/target-type": "ip"},
                    },
                    "spec": {
                        "ingressClassName": "public",
                        "defaultBackend": {"service": {"name": "app", "port": {"number": 80}}},
                    },
                },
            ),
            [("aws-alb", "Ingress/web", 15.0, 2, 300.0)],
        ),
        (
            (
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "metadata": {
                        "name": "web",
                        "annotations": {"kubernetes.io/ingress.class": "gce"},
                    },
                    "spec": {
                        "defaultBackend": {"service": {"name": "app", "port": {"number": 80}}}
                    },
                },
            ),
            [("gke-neg", "Ingress/web", 5.0, 2, None)],
        ),
    ],
)
def test_load_balancers_from_annotations(
    extra: tuple[dict[str, Any], ...], found: list[tuple[Any, ...]]
) -> None:  # fmt: skip
    w, docs = _stream(*extra)
    got = [
        (lb.name, lb.source, lb.interval_seconds, lb.threshold, lb.deregistration_delay_seconds)
        for lb in lb_detect.load_balancers(w, docs)
    ]
    assert got == found


def test_lb_option_overrides_what_the_stream_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(STREAM / "alb-default.yaml")
    assert run(["check", "--config", CONF, "--lb", "kube-proxy", path], capsys)[:2] == (0, [])


def test_image_env_is_given_with_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The image's ENV is not in the manifest: --env gives it, under the container's env."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        "import os\nfrom gunicorn_zdt.conf import *  # noqa\n"
        'bind = ["0.0.0.0:" + os.environ.get("IMAGE_PORT", "9999")]\n'
        'worker_class = "gthread"\nthreads = 4\ntimeout = 20\ninstall(globals())  # noqa\n'
    )
    path = str(MANIFESTS / "good.yaml")
    code, out, _ = run(["check", "--config", str(conf), path], capsys)
    assert code == 1 and any("Gunicorn binds port 9999" in line for line in out)
    argv = ["check", "--strict", "--config", str(conf), "--env", "IMAGE_PORT=8080", path]
    assert run(argv, capsys)[:2] == (0, [])
    assert run(["check", "--env", "IMAGE_PORT", path], capsys)[0] == 2


def test_config_under_the_working_dir_is_read_from_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    c = docs[0]["spec"]["template"]["spec"]["containers"][0]
    c["workingDir"] = "/app"
    c["command"] = [
        "gunicorn",
        "-c",
        "/app/tests/manifests/gunicorn.conf.py",
        "example_app.wsgi:app",
    ]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert run(["check", "--strict", str(path)], capsys)[:2] == (0, [])


MALFORMED = "an object that selects or routes to these pods cannot be read"


@pytest.mark.parametrize(
    ("extra", "code", "line"),
    [
        ({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": ["a"]}, 0, None),
        ({"kind": "Secret", "metadata": {"name": "x"}, "data": "zz", "stringData": [1]}, 0, None),
        ({"kind": "Namespace", "metadata": "x"}, 0, None),
        ({"kind": "Service", "metadata": {"name": "x", "annotations": ["a"]}, "spec": ["a"]}, 2, MALFORMED),
        (
            {"kind": "PodDisruptionBudget", "metadata": {"name": "y"}, "spec": {"selector": {"matchLabels": ["a"]}}},
            2,
            MALFORMED,
        ),
        (
            {"kind": "Ingress", "metadata": {"name": "i", "annotations": "x"}, "spec": {"rules": ["x"], "defaultBackend": "x"}},
            2,
            MALFORMED,
        ),
        ({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}, "spec": {"scaleTargetRef": "x"}}, 2, MALFORMED),
    ],
    ids=["configmap-data-list", "secret-data-string", "namespace-metadata", "service-spec-list",
         "pdb-match-labels-list", "ingress-rules-strings", "hpa-target-string"],
)  # fmt: skip
def test_malformed_neighbours_are_one_line_never_a_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, Any],
    code: int,
    line: str | None,
) -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all([*docs, {"apiVersion": "v1", **extra}]))
    got, out, err = run(["check", "--strict", "--config", CONF, str(path)], capsys)
    assert got == code
    if line is not None:
        assert (out, len(err), line in err[0]) == ([], 2, True)


@pytest.mark.parametrize(("links", "code"), [(None, 2), (False, 0)])
def test_service_links_reach_the_config_as_in_the_pod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], links: bool | None, code: int
) -> None:
    """Service/app gives every pod of its namespace APP_PORT=tcp://IP:80 (enableServiceLinks):
    a config that reads APP_PORT as a number fails in the pod, and so in the check."""
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(
        "import os\nfrom gunicorn_zdt.conf import *  # noqa\n"
        'bind = ["0.0.0.0:%d" % int(os.environ.get("APP_PORT", "8080"))]\n'
        'worker_class = "gthread"\nthreads = 4\ntimeout = 20\ninstall(globals())  # noqa\n'
    )
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    if links is not None:
        docs[0]["spec"]["template"]["spec"]["enableServiceLinks"] = links
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    got, out, err = run(["check", "--strict", "--config", str(conf), str(path)], capsys)
    assert (got, out) == (code, [])
    if code == 2:
        assert "invalid literal for int() with base 10: 'tcp://10.96.0.10:80'" in err[0]


def test_service_links_as_the_kubelet_adds_them() -> None:
    ports = [{"name": "http", "port": 80}, {"name": "grpc-x", "port": 9090, "protocol": "UDP"}]
    udp = {"port": 53, "protocol": "UDP"}  # the first port's protocol names the scheme
    docs = [
        _doc("ConfigMap", "first", data={}),  # not a Service: skipped, and the rest still read
        _doc("Service", "dns", spec={"clusterIP": "10.0.0.8", "ports": [{"name": "x"}, udp]}),
        _doc("Service", "web-api", spec={"clusterIP": "10.0.0.7", "ports": ports}),
        _doc("Service", "peers", spec={"clusterIP": "None", "ports": [{"port": 80}]}),
        _doc("Service", "ext", spec={"type": "ExternalName", "ports": [{"port": 80}]}),
        _doc("Service", "noports", spec={"ports": []}),
        _doc("Service", "fresh", spec={"ports": [{"port": 8080}]}),
        _doc("Service", "odd", spec=["a"]),
        Document(
            "s",
            {
                "kind": "Service",
                "metadata": {"name": "elsewhere", "namespace": "b"},
                "spec": {"ports": [{"port": 1}]},
            },
        ),
        _doc("ConfigMap", "notaservice", data={}),
    ]
    assert service_links(docs, None) == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "DNS_SERVICE_HOST": "10.0.0.8",
        "DNS_SERVICE_PORT": "53",
        "DNS_PORT": "udp://10.0.0.8:53",
        "DNS_PORT_53_UDP": "udp://10.0.0.8:53",
        "DNS_PORT_53_UDP_PROTO": "udp",
        "DNS_PORT_53_UDP_PORT": "53",
        "DNS_PORT_53_UDP_ADDR": "10.0.0.8",
        "WEB_API_SERVICE_HOST": "10.0.0.7",
        "WEB_API_SERVICE_PORT": "80",
        "WEB_API_PORT": "tcp://10.0.0.7:80",
        "WEB_API_PORT_80_TCP": "tcp://10.0.0.7:80",
        "WEB_API_PORT_80_TCP_PROTO": "tcp",
        "WEB_API_PORT_80_TCP_PORT": "80",
        "WEB_API_PORT_80_TCP_ADDR": "10.0.0.7",
        "WEB_API_SERVICE_PORT_HTTP": "80",
        "WEB_API_PORT_9090_UDP": "udp://10.0.0.7:9090",
        "WEB_API_PORT_9090_UDP_PROTO": "udp",
        "WEB_API_PORT_9090_UDP_PORT": "9090",
        "WEB_API_PORT_9090_UDP_ADDR": "10.0.0.7",
        "WEB_API_SERVICE_PORT_GRPC_X": "9090",
        "FRESH_SERVICE_HOST": "10.96.0.10",
        "FRESH_SERVICE_PORT": "8080",
        "FRESH_PORT": "tcp://10.96.0.10:8080",
        "FRESH_PORT_8080_TCP": "tcp://10.96.0.10:8080",
        "FRESH_PORT_8080_TCP_PROTO": "tcp",
        "FRESH_PORT_8080_TCP_PORT": "8080",
        "FRESH_PORT_8080_TCP_ADDR": "10.96.0.10",
    }


@pytest.mark.parametrize("native", [False, True])
def test_an_injected_proxy_is_a_container_of_the_pod(native: bool) -> None:
    """What the rules see: a container (or native sidecar) with no ports, no preStop and no
    command of its own; its drain is in its mesh record."""
    from gunicorn_zdt.k8s import Neighbour, PreStop

    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    meta = docs[0]["spec"]["template"]["metadata"]
    meta["annotations"] = {"sidecar.istio.io/inject": "true"}
    if native:
        meta["annotations"]["sidecar.istio.io/nativeSidecar"] = "true"
    (w,) = [w for w in workloads([Document("s", o) for o in docs]) if isinstance(w, Workload)]
    (proxy,) = injected_proxies({}, meta["annotations"], {}, {})
    fld = "spec.template.metadata.annotations[sidecar.istio.io/inject]"
    role = "sidecar" if native else "container"
    assert w.neighbours == (Neighbour("istio-proxy", fld, role, (), PreStop(), (), proxy),)
