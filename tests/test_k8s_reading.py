"""The manifest reader (gunicorn_zdt.k8s) as tables: each row one behaviour, edges both sides.

What the rules and the drill believe about a pod comes from here: Kubernetes' defaults
(core/v1 and apps/v1), IntOrString scaling as the Deployment controller rounds it, label
selectors as the API server matches them, and the one-line errors for input that is not a
workload. The expected values come from the Kubernetes API reference and controller code
named in gunicorn_zdt/k8s/, not from running this module.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from gunicorn_zdt.k8s import (
    Document,
    ManifestError,
    Neighbour,
    PreStop,
    Probe,
    Workload,
    autoscaler_for,
    exec_sleep_seconds,
    label_selector_matches,
    parse_documents,
    read_documents,
    resolve_int_or_percent,
    rolling_update_limits,
    skipped_kinds,
    workloads,
)
from gunicorn_zdt.k8s import workload as k8s

# --- IntOrString ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "down", "up"),
    [
        (3, 10, 3, 3),  # a number is absolute, whatever the total
        (0, 10, 0, 0),
        ("2", 10, 2, 2),  # a number written as a string
        (" 2 ", 10, 2, 2),
        ("25%", 4, 1, 1),  # exact: no rounding either way
        ("50%", 4, 2, 2),
        ("25%", 3, 0, 1),  # 0.75: down to 0, up to 1
        ("34%", 3, 1, 2),  # 1.02
        ("33%", 3, 0, 1),  # 0.99
        ("99%", 1, 0, 1),
        ("100%", 3, 3, 3),
        ("0%", 3, 0, 0),
        ("25%", 0, 0, 0),
        (" 50% ", 3, 1, 2),
        ("150%", 2, 3, 3),
    ],
)
def test_resolve_int_or_percent(value: Any, total: int, down: int, up: int) -> None:
    assert resolve_int_or_percent(value, total, round_up=False) == down
    assert resolve_int_or_percent(value, total, round_up=True) == up


@pytest.mark.parametrize("value", [True, False, "abc", "x%", "%", "2.5", ""])
def test_resolve_int_or_percent_refuses(value: Any) -> None:
    with pytest.raises(ValueError):
        resolve_int_or_percent(value, 4, round_up=True)


def test_resolve_int_or_percent_refuses_a_boolean_by_name() -> None:
    """YAML's true is an int to Python: refused in words, not taken as 1."""
    with pytest.raises(ValueError, match=r"^True is not a number or percentage$"):
        resolve_int_or_percent(True, 4, round_up=False)


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "limits"),
    [
        (3, "25%", "25%", (1, 0)),  # the default: surge 0.75 up, unavailable 0.75 down
        (4, "25%", "25%", (1, 1)),
        (3, 1, 0, (1, 0)),
        (3, 0, 1, (0, 1)),
        (3, 0, 0, (0, 1)),  # both 0: unavailable becomes 1, or the rollout could not move
        (3, "0%", "10%", (0, 1)),  # 0.3 down is 0: both 0 again
        (3, "1%", "0%", (1, 0)),  # 0.03 up is 1: no fencepost
        (10, "10%", "10%", (1, 1)),
        (10, 2, "19%", (2, 1)),
        (2, "100%", "100%", (2, 2)),
    ],
)
def test_rolling_update_limits(
    replicas: int, surge: Any, unavailable: Any, limits: tuple[int, int]
) -> None:
    assert rolling_update_limits(replicas, surge, unavailable) == limits


@pytest.mark.parametrize(
    ("surge", "unavailable", "message"),
    [
        (-1, 0, "maxSurge -1 must not be negative"),
        (0, -1, "maxUnavailable -1 must not be negative"),
        ("-25%", 1, "maxSurge '-25%' must not be negative"),
        ("x", 0, "maxSurge 'x' is not a number or percentage; use e.g. 1 or '25%'"),
        (1, True, "maxUnavailable True is not a number or percentage; use e.g. 1 or '25%'"),
        (1, "1.5", "maxUnavailable '1.5' is not a number or percentage; use e.g. 1 or '25%'"),
    ],
)
def test_rolling_update_limits_refuses(surge: Any, unavailable: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        rolling_update_limits(4, surge, unavailable)
    assert str(info.value) == message


def test_rolling_update_limits_accepts_zero_replicas() -> None:
    assert rolling_update_limits(0, "25%", "25%") == (0, 1)


# --- label selectors (metav1.LabelSelector) -------------------------------------------

POD = {"app": "web", "tier": "front", "v": "1"}


def expr(key: str, op: str, *values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, False),  # not a selector at all
        ("app=web", False),
        ([], False),
        ({}, True),  # policy/v1: the empty selector selects every pod
        ({"matchLabels": {}, "matchExpressions": []}, True),
        ({"matchLabels": None}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "web", "tier": "front"}}, True),
        ({"matchLabels": {"app": "api"}}, False),
        ({"matchLabels": {"app": "web", "tier": "back"}}, False),  # every label must match
        ({"matchLabels": {"zone": "a"}}, False),  # a label the pod does not have
        ({"matchLabels": {"v": 1}}, True),  # YAML number against the label's string
        ({"matchExpressions": [expr("app", "In", "web", "api")]}, True),
        ({"matchExpressions": [expr("app", "In", "api")]}, False),
        ({"matchExpressions": [expr("zone", "In", "a")]}, False),  # In needs the key
        ({"matchExpressions": [expr("v", "In", 1)]}, True),
        ({"matchExpressions": [expr("app", "NotIn", "api")]}, True),
        ({"matchExpressions": [expr("app", "NotIn", "web", "api")]}, False),
        ({"matchExpressions": [expr("zone", "NotIn", "a")]}, True),  # NotIn: absent is fine
        ({"matchExpressions": [expr("tier", "Exists")]}, True),
        ({"matchExpressions": [expr("zone", "Exists")]}, False),
        ({"matchExpressions": [expr("zone", "DoesNotExist")]}, True),
        ({"matchExpressions": [expr("tier", "DoesNotExist")]}, False),
        ({"matchExpressions": [expr("v", "Gt", "0")]}, False),  # not a LabelSelector operator
        ({"matchExpressions": [expr("app", "in", "web")]}, False),  # operators are exact
        (  # every expression must hold: the second one fails
            {"matchExpressions": [expr("app", "In", "web"), expr("tier", "In", "back")]},
            False,
        ),
        (
            {"matchExpressions": [expr("app", "In", "web"), expr("tier", "Exists")]},
            True,
        ),
        (  # matchLabels and matchExpressions both hold
            {"matchLabels": {"app": "web"}, "matchExpressions": [expr("zone", "DoesNotExist")]},
            True,
        ),
        (  # the labels match, the expression does not
            {"matchLabels": {"app": "web"}, "matchExpressions": [expr("tier", "DoesNotExist")]},
            False,
        ),
        (  # the expression holds, the labels do not
            {"matchLabels": {"app": "api"}, "matchExpressions": [expr("tier", "Exists")]},
            False,
        ),
    ],
)
def test_label_selector_matches(selector: Any, matches: bool) -> None:
    assert label_selector_matches(selector, POD) is matches


def test_empty_selector_matches_a_pod_without_labels() -> None:
    assert label_selector_matches({}, {}) is True
    assert label_selector_matches({"matchExpressions": [expr("a", "DoesNotExist")]}, {}) is True
    assert label_selector_matches({"matchExpressions": [expr("a", "NotIn", "x")]}, {}) is True


# --- preStop ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "seconds"),
    [
        (["sleep", "5"], 5.0),
        (["/bin/sleep", "5"], 5.0),
        (["sleep", "5s"], 5.0),  # GNU sleep's suffix for seconds
        (["sleep", "1.5"], 1.5),
        (["sleep", "0"], 0.0),
        (["/bin/sh", "-c", "sleep 5"], 5.0),
        (["sh", "-c", "sleep 5"], 5.0),
        (["bash", "-c", "sleep  7 "], 7.0),
        (["/bin/busybox", "-c", "sleep 3"], 3.0),
        (["sh", "-c", "sleep 5", "arg0"], 5.0),  # words after the script are its $0, $1
        (["sh", "-c", "'sleep' '5'"], 5.0),  # the shell's quoting
        (["sleep"], None),
        (["sleep", "5", "6"], None),
        (["sleep", "5m"], None),  # minutes: not a duration the check knows
        (["sleep", "abc"], None),
        (["sleep", "5X"], None),
        (["sleepy", "5"], None),
        (["echo", "5"], None),
        ([], None),
        (["sh", "-c", "sleep 5 && nginx -s quit"], None),
        (["sh", "-c", "sleep 'unterminated"], None),  # shlex cannot split it
        (["sh", "-x", "sleep 5"], None),  # not -c: the third word is a file, not a script
        (["python", "-c", "sleep 5"], None),  # not a shell
        (["sh", "-c"], None),
        (["sh", "sleep", "5"], None),
    ],
)
def test_exec_sleep_seconds(command: list[str], seconds: float | None) -> None:
    assert exec_sleep_seconds(command) == seconds


FLD = "spec.template.spec.containers[web].lifecycle.preStop"


@pytest.mark.parametrize(
    ("container", "prestop"),
    [
        ({}, PreStop(None, 0.0, FLD)),
        ({"lifecycle": None}, PreStop(None, 0.0, FLD)),
        ({"lifecycle": {}}, PreStop(None, 0.0, FLD)),
        ({"lifecycle": {"preStop": None}}, PreStop(None, 0.0, FLD)),
        ({"lifecycle": {"preStop": "sleep 5"}}, PreStop(None, 0.0, FLD)),
        ({"lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}, PreStop("sleep", 5.0, FLD)),
        ({"lifecycle": {"preStop": {"sleep": {}}}}, PreStop("sleep", 0.0, FLD)),
        ({"lifecycle": {"preStop": {"sleep": 5}}}, PreStop(None, 0.0, FLD)),
        (
            {"lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}},
            PreStop("exec", 5.0, FLD, exec_sleep=True, command=("sleep", "5")),
        ),
        (
            {"lifecycle": {"preStop": {"exec": {"command": ["sleep", 0]}}}},
            PreStop("exec", 0.0, FLD, exec_sleep=True, command=("sleep", "0")),
        ),
        (
            {"lifecycle": {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}},
            PreStop("exec", 0.0, FLD, exec_sleep=False, command=("nginx", "-s", "quit")),
        ),
        (
            {"lifecycle": {"preStop": {"exec": {}}}},
            PreStop("exec", 0.0, FLD, exec_sleep=False, command=()),
        ),
        ({"lifecycle": {"preStop": {"exec": ["sleep", "5"]}}}, PreStop(None, 0.0, FLD)),
        (
            {"lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 8080}}}},
            PreStop("httpGet", 0.0, FLD, path="/drain"),
        ),
        (
            {"lifecycle": {"preStop": {"httpGet": {"port": 8080}}}},
            PreStop("httpGet", 0.0, FLD, path="/"),  # Kubernetes' default path
        ),
        ({"lifecycle": {"preStop": {"httpGet": None}}}, PreStop("httpGet", 0.0, FLD, path="/")),
        ({"lifecycle": {"preStop": {"tcpSocket": {"port": 8080}}}}, PreStop(None, 0.0, FLD)),
    ],
)
def test_prestop(container: dict[str, Any], prestop: PreStop) -> None:
    assert k8s._prestop(container, FLD) == prestop


@pytest.mark.parametrize(
    ("prestop", "sleeps", "empty", "shown"),
    [
        (PreStop(), False, True, "none"),
        (PreStop.sleeping(0), False, True, "none"),
        (PreStop("sleep", 0.0), True, True, "sleep 0 s"),
        (PreStop.sleeping(5), True, False, "sleep 5 s"),
        (PreStop.sleeping(2.5), True, False, "sleep 2.5 s"),
        (PreStop("exec", 3.0, exec_sleep=True, command=("sleep", "3")), True, False, "sleep 3 s"),
        (
            PreStop("exec", 0.0, command=("sh", "-c", "nginx -s quit")),
            False,
            False,
            "exec sh -c 'nginx -s quit'",
        ),
        (PreStop("exec", 0.0), False, False, "exec "),
        (PreStop("httpGet", 0.0, path="/drain"), False, False, "httpGet /drain"),
    ],
)
def test_prestop_described(prestop: PreStop, sleeps: bool, empty: bool, shown: str) -> None:
    assert (prestop.sleeps, prestop.empty, prestop.describe()) == (sleeps, empty, shown)


def test_prestop_sleeping() -> None:
    assert PreStop.sleeping(5) == PreStop("sleep", 5.0, "lifecycle.preStop")
    assert PreStop.sleeping(0) == PreStop(None, 0.0, "lifecycle.preStop")


# --- probes ----------------------------------------------------------------------------

PFLD = "spec.template.spec.containers[web].readinessProbe"


def probe(**kw: Any) -> Probe:
    return Probe(kind="readiness", field=PFLD, **kw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("httpGet", None),
        ({}, probe(handler=None)),  # no handler: the API server would refuse it
        (
            {"httpGet": {"path": "/healthz/ready", "port": "http"}},
            probe(handler="httpGet", path="/healthz/ready", port="http"),
        ),
        ({"httpGet": {"port": 8080}}, probe(handler="httpGet", path="/", port=8080)),
        ({"httpGet": None}, probe(handler="httpGet", path="/")),
        ({"tcpSocket": {"port": 8080}}, probe(handler="tcpSocket", port=8080)),
        ({"exec": {"command": ["true"]}}, probe(handler="exec")),
        ({"grpc": {"port": 9000}}, probe(handler="grpc", port=9000)),
        (  # two handlers (refused by the API server): the first of httpGet, tcpSocket, ...
            {"exec": {"command": ["true"]}, "httpGet": {"path": "/x", "port": 1}},
            probe(handler="httpGet", path="/x", port=1),
        ),
        (
            {"tcpSocket": {"port": 1}, "exec": {"command": ["true"]}},
            probe(handler="tcpSocket", port=1),
        ),
        (
            {"exec": {"command": ["true"]}, "grpc": {"port": 2}},
            probe(handler="exec"),
        ),
        (  # every number written: each lands in its own field
            {
                "tcpSocket": {"port": 1},
                "initialDelaySeconds": 11,
                "periodSeconds": 12,
                "timeoutSeconds": "13",
                "successThreshold": 14,
                "failureThreshold": 15,
            },
            probe(
                handler="tcpSocket",
                port=1,
                initial_delay_seconds=11,
                period_seconds=12,
                timeout_seconds=13,
                success_threshold=14,
                failure_threshold=15,
            ),
        ),
    ],
)
def test_probe(raw: Any, expected: Probe | None) -> None:
    assert k8s._probe("readiness", raw, PFLD) == expected


def test_probe_defaults_are_kubernetes_defaults() -> None:
    read = k8s._probe("liveness", {"tcpSocket": {"port": 1}}, "f")
    assert read is not None
    numbers = (
        read.initial_delay_seconds,
        read.period_seconds,
        read.timeout_seconds,
        read.success_threshold,
        read.failure_threshold,
    )
    assert numbers == (0, 10, 1, 1, 3)  # core/v1 types.go
    assert (read.kind, read.field) == ("liveness", "f")


@pytest.mark.parametrize(
    ("path", "only"),
    [
        (None, None),
        ("/healthz/ready", "/healthz/ready"),
        ("/healthz/ready?exclude=db", "/healthz/ready"),
        ("/healthz/ready?exclude=db?x", "/healthz/ready"),
        ("/?", "/"),
    ],
)
def test_probe_path_only(path: str | None, only: str | None) -> None:
    assert Probe("readiness", path=path).path_only == only


# --- documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "kind", "name", "namespace", "ref"),
    [
        ({"kind": "Service", "metadata": {"name": "app"}}, "Service", "app", None, "Service/app"),
        (
            {"kind": "Service", "metadata": {"name": "app", "namespace": "prod"}},
            "Service",
            "app",
            "prod",
            "Service/app",
        ),
        ({"kind": "Service"}, "Service", "<unnamed>", None, "Service/<unnamed>"),
        ({"kind": "Service", "metadata": "app"}, "Service", "<unnamed>", None, "Service/<unnamed>"),
        (
            {"kind": "Service", "metadata": {"name": "", "namespace": ""}},
            "Service",
            "<unnamed>",
            None,
            "Service/<unnamed>",
        ),
        ({"kind": None, "metadata": {"name": "x"}}, "", "x", None, "<no kind>/x"),
        ({"metadata": {"name": 7, "namespace": 8}}, "", "7", "8", "<no kind>/7"),
    ],
)
def test_document(obj: dict[str, Any], kind: str, name: str, namespace: Any, ref: str) -> None:
    doc = Document("f.yaml", obj)
    assert (doc.kind, doc.name, doc.namespace, doc.ref) == (kind, name, namespace, ref)


def test_parse_documents_multi_document_and_list() -> None:
    text = """
kind: Service
metadata: {name: a}
---
---
kind: List
items:
- kind: Deployment
  metadata: {name: b}
- just a string
- kind: ConfigMap
  metadata: {name: c}
---
kind: List
items: not a list
"""
    docs = parse_documents(text, "all.yaml")
    assert [(d.source, d.ref) for d in docs] == [
        ("all.yaml", "Service/a"),
        ("all.yaml", "Deployment/b"),
        ("all.yaml", "ConfigMap/c"),
        ("all.yaml", "List/<unnamed>"),
    ]


def test_parse_documents_json() -> None:
    docs = parse_documents('{"kind": "Service", "metadata": {"name": "a"}}', "svc.json")
    assert [d.ref for d in docs] == ["Service/a"]
    assert parse_documents("", "empty.yaml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: Service\n---\n- a list\n",
            "x.yaml: document 2 is not a Kubernetes object (no kind); pass only manifests, "
            "one object per YAML document",
        ),
        (
            "metadata: {name: a}\n",
            "x.yaml: document 1 is not a Kubernetes object (no kind); pass only manifests, "
            "one object per YAML document",
        ),
        (
            "kind: Service\nmetadata: {name: a\n",
            "x.yaml: not valid YAML at line 3, column 1: expected ',' or '}', but got "
            "'<stream end>'; fix the syntax (or render templates first, e.g. kubectl "
            "kustomize DIR | gunicorn-zdt check -)",
        ),
        (  # a character YAML does not allow: no line or column, no problem text
            "kind: \x07\n",
            "x.yaml: not valid YAML: ReaderError; fix the syntax (or render templates first, "
            "e.g. kubectl kustomize DIR | gunicorn-zdt check -)",
        ),
        (
            "kind: Service\n  bad: indent\n",
            "x.yaml: not valid YAML at line 2, column 6: mapping values are not allowed here; "
            "fix the syntax (or render templates first, e.g. kubectl kustomize DIR | "
            "gunicorn-zdt check -)",
        ),
    ],
)
def test_parse_documents_refuses(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_documents(text, "x.yaml")
    assert str(info.value) == message


def test_read_documents_files_folders_and_stdin(tmp_path: Path) -> None:
    folder = tmp_path / "k8s"
    folder.mkdir()
    (folder / "b.yaml").write_text("kind: Service\nmetadata: {name: b}\n")
    (folder / "a.yml").write_text("kind: Service\nmetadata: {name: a}\n")
    (folder / "c.json").write_text('{"kind": "Service", "metadata": {"name": "c"}}')
    (folder / "notes.txt").write_text("kind: Service\nmetadata: {name: txt}\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.yaml").write_text("kind: Service\nmetadata: {name: d}\n")
    single = tmp_path / "one.yaml"
    single.write_text("kind: Service\nmetadata: {name: one}\n")
    stdin = io.StringIO("kind: Service\nmetadata: {name: piped}\n")
    docs, errors = read_documents([str(folder), "-", str(single)], stdin)
    assert errors == []
    assert [(Path(d.source).name, d.name) for d in docs] == [
        ("a.yml", "a"),  # a folder's files in name order, only *.yaml, *.yml, *.json
        ("b.yaml", "b"),
        ("c.json", "c"),
        ("<stdin>", "piped"),
        ("one.yaml", "one"),  # the paths after - are read too
    ]


def test_read_documents_errors_one_line_each(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    binary = tmp_path / "image.yaml"
    binary.write_bytes(b"kind: \xff\xfe")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- a list\n")
    good = tmp_path / "good.yaml"
    good.write_text("kind: Service\nmetadata: {name: ok}\n")
    missing = tmp_path / "missing.yaml"
    odd = tmp_path / "odd"
    (odd / "x.yaml").mkdir(parents=True)  # a folder named like a manifest
    paths = [str(empty), str(binary), str(missing), str(broken), str(odd), str(good)]
    docs, errors = read_documents(paths)
    assert [d.name for d in docs] == ["ok"]  # one bad path does not hide the others
    assert errors == [
        f"{empty}: no *.yaml, *.yml or *.json file in this folder; pass the folder that holds "
        "your Deployment",
        f"{binary}: not UTF-8 text (byte 0xff at offset 6); pass a YAML or JSON manifest",
        f"{missing}: no such file or folder",
        f"{broken}: document 1 is not a Kubernetes object (no kind); pass only manifests, one "
        "object per YAML document",
        f"{odd / 'x.yaml'}: cannot read: [Errno 21] Is a directory: '{odd / 'x.yaml'}'",
    ]


def test_skipped_kinds() -> None:
    docs = [
        Document("a.yaml", {"kind": "Deployment", "metadata": {"name": "app"}}),
        Document("a.yaml", {"kind": "StatefulSet", "metadata": {"name": "db"}}),
        Document("a.yaml", {"kind": "Service", "metadata": {"name": "app"}}),
        Document("a.yaml", {"kind": "Kustomization"}),
        Document("b.yaml", {"kind": "CronJob", "metadata": {"name": "nightly"}}),
        Document("b.yaml", {"kind": "", "metadata": {"name": "x"}}),
    ]
    assert skipped_kinds(docs) == [
        "b.yaml: CronJob/nightly: skipped: the check does not read CronJob",
        "b.yaml: <no kind>/x: skipped: the check does not read objects without a kind",
    ]


# --- workloads -------------------------------------------------------------------------


def deployment(
    spec: dict[str, Any] | None = None,
    pod: dict[str, Any] | None = None,
    containers: list[Any] | None = None,
    kind: str = "Deployment",
    namespace: str | None = None,
) -> Document:
    """A Deployment with one container ``web`` (``gunicorn app:app``), edited by the args."""
    metadata: dict[str, Any] = {"name": "app"}
    if namespace is not None:
        metadata["namespace"] = namespace
    pod_spec: dict[str, Any] = {
        "containers": containers
        if containers is not None
        else [{"name": "web", "command": ["gunicorn", "app:app"]}],
        **(pod or {}),
    }
    obj = {
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": pod_spec},
            **(spec or {}),
        },
    }
    return Document("d.yaml", obj)


def one(doc: Document) -> Workload:
    found = list(workloads([doc]))
    assert len(found) == 1 and isinstance(found[0], Workload), found
    return found[0]


def test_workload_defaults() -> None:
    w = one(deployment())
    assert (w.replicas, w.replicas_set) == (1, False)
    assert (w.grace_period_seconds, w.grace_period_set) == (30.0, False)
    assert (w.min_ready_seconds, w.progress_deadline_seconds) == (0.0, 600.0)
    assert (w.strategy, w.strategy_type, w.strategy_field) == ({}, "RollingUpdate", "spec.strategy")
    assert (w.max_surge, w.max_unavailable) == ("25%", "25%")
    assert w.pod_management_policy == "OrderedReady"
    assert (w.container_name, w.container_field) == ("web", "spec.template.spec.containers[web]")
    assert (w.command, w.args) == (["gunicorn", "app:app"], None)
    assert (dict(w.ports), dict(w.env), w.env_indirect) == ({}, {}, frozenset())
    assert w.prestop == PreStop(None, 0.0, "spec.template.spec.containers[web].lifecycle.preStop")
    assert dict(w.probes) == {"readiness": None, "liveness": None, "startup": None}
    assert (dict(w.labels), w.neighbours) == ({"app": "app"}, ())
    assert (w.source, w.kind, w.ref) == ("d.yaml", "Deployment", "Deployment/app")


def test_workload_as_written() -> None:
    container = {
        "name": "web",
        "command": ["gunicorn"],
        "args": ["-c", "conf.py", 8],
        "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": "9090"}],
        "env": [
            {"name": "ZDT_DRAIN_SECONDS", "value": "5"},
            {"name": "PORT", "value": 8080},
            {"name": "EMPTY"},
            {"name": "ZDT_PROBE_PREFIX", "valueFrom": {"configMapKeyRef": {"name": "c"}}},
        ],
        "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": "http"}},
        "livenessProbe": {"httpGet": {"path": "/healthz/live", "port": "http"}},
        "startupProbe": {"tcpSocket": {"port": "http"}},
    }
    doc = deployment(
        spec={
            "replicas": 3,
            "minReadySeconds": 7,
            "progressDeadlineSeconds": 120,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
        },
        pod={"terminationGracePeriodSeconds": 45},
        containers=[container],
    )
    w = one(doc)
    c = "spec.template.spec.containers[web]"
    assert (w.replicas, w.replicas_set) == (3, True)
    assert (w.grace_period_seconds, w.grace_period_set) == (45.0, True)
    assert (w.min_ready_seconds, w.progress_deadline_seconds) == (7.0, 120.0)
    assert (w.max_surge, w.max_unavailable) == (1, 0)
    assert w.args == ["-c", "conf.py", "8"]
    assert dict(w.ports) == {"http": 8080, "9090": 9090}
    assert w.container_ports == [8080, 9090]
    assert dict(w.env) == {"ZDT_DRAIN_SECONDS": "5", "PORT": "8080", "EMPTY": ""}
    assert w.env_indirect == frozenset({"ZDT_PROBE_PREFIX"})
    assert w.env_field("PORT") == f"{c}.env[PORT]"
    assert w.prestop == PreStop("sleep", 3.0, f"{c}.lifecycle.preStop")
    probes = {
        kind: (p.kind, p.handler, p.path, p.port, p.field) for kind, p in w.probes.items() if p
    }
    assert probes == {
        "readiness": ("readiness", "httpGet", "/healthz/ready", "http", f"{c}.readinessProbe"),
        "liveness": ("liveness", "httpGet", "/healthz/live", "http", f"{c}.livenessProbe"),
        "startup": ("startup", "tcpSocket", None, "http", f"{c}.startupProbe"),
    }


def test_workload_zero_is_not_the_default() -> None:
    w = one(deployment(spec={"replicas": 0}, pod={"terminationGracePeriodSeconds": 0}))
    assert (w.replicas, w.replicas_set) == (0, True)
    assert (w.grace_period_seconds, w.grace_period_set) == (0.0, True)


def test_statefulset_reads_its_update_strategy() -> None:
    doc = deployment(
        spec={
            "updateStrategy": {"type": "OnDelete"},
            "strategy": {"type": "Recreate"},  # not a StatefulSet field: ignored
            "podManagementPolicy": "Parallel",
        },
        kind="StatefulSet",
    )
    w = one(doc)
    assert (w.strategy_type, w.strategy_field, w.pod_management_policy) == (
        "OnDelete",
        "spec.updateStrategy",
        "Parallel",
    )
    assert one(deployment(spec={"updateStrategy": {"type": "OnDelete"}})).strategy_type == (
        "RollingUpdate"  # and a Deployment does not read updateStrategy
    )


@pytest.mark.parametrize(
    ("strategy", "surge", "unavailable"),
    [
        ({"type": "RollingUpdate"}, "25%", "25%"),
        ({"rollingUpdate": None}, "25%", "25%"),
        ({"rollingUpdate": {"maxSurge": "50%"}}, "50%", "25%"),
        ({"rollingUpdate": {"maxUnavailable": 0}}, "25%", 0),
    ],
)
def test_rolling_update_defaults(strategy: dict[str, Any], surge: Any, unavailable: Any) -> None:
    w = one(deployment(spec={"strategy": strategy}))
    assert (w.max_surge, w.max_unavailable) == (surge, unavailable)


@pytest.mark.parametrize(
    ("port", "resolved"),
    [
        (8080, 8080),
        (9999, 9999),  # a number is taken as written, declared or not
        ("8080", 8080),
        ("http", 8080),
        ("metrics", 9090),
        ("web", None),
        (True, None),
        (None, None),
        (8080.0, None),
    ],
)
def test_resolve_port(port: Any, resolved: int | None) -> None:
    ports = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]
    w = one(deployment(containers=[{"name": "web", "ports": ports}]))
    assert w.resolve_port(port) == resolved


@pytest.mark.parametrize(
    ("containers", "app"),
    [
        (  # named in the command or the args, wherever it is
            [{"name": "proxy"}, {"name": "web", "command": ["/usr/bin/gunicorn"]}],
            "web",
        ),
        ([{"name": "proxy"}, {"name": "web", "args": ["python", "-m", "gunicorn"]}], "web"),
        (  # else the one with ZDT_* env
            [
                {"name": "proxy", "env": [{"name": "DRAIN", "value": "1"}]},
                {"name": "web", "env": [{"name": "ZDT_DRAIN_SECONDS", "value": "5"}]},
            ],
            "web",
        ),
        (  # gunicorn in a command wins over ZDT_* env elsewhere
            [
                {"name": "proxy", "env": [{"name": "ZDT_DRAIN_SECONDS", "value": "5"}]},
                {"name": "web", "command": ["gunicorn"]},
            ],
            "web",
        ),
        ([{"name": "first"}, {"name": "second"}], "first"),  # else the first
        (["not a mapping", {"name": "web"}], "web"),
        ([{"command": ["gunicorn"]}], "0"),  # no name: its index
    ],
)
def test_app_container(containers: list[Any], app: str) -> None:
    assert one(deployment(containers=containers)).container_name == app


def test_neighbours() -> None:
    doc = deployment(
        pod={
            "initContainers": [
                {"name": "migrate", "command": ["flask", "db", "upgrade"]},
                {
                    "name": "proxy",
                    "restartPolicy": "Always",
                    "args": ["--max-sigterm-delay=30s"],
                    "ports": [{"containerPort": 5432}, {"name": "no-number"}, "junk"],
                },
                {"restartPolicy": "OnFailure"},
            ]
        },
        containers=[
            {"name": "web", "command": ["gunicorn"]},
            {
                "name": "envoy",
                "command": ["envoy"],
                "args": ["-c", "e.yaml"],
                "ports": [{"containerPort": 9901}],
                "lifecycle": {"preStop": {"sleep": {"seconds": 40}}},
            },
            "not a mapping",
        ],
    )
    init = "spec.template.spec.initContainers"
    c = "spec.template.spec.containers"
    assert one(doc).neighbours == (
        Neighbour(
            "migrate",
            f"{init}[migrate]",
            "init",
            (),
            PreStop(None, 0.0, f"{init}[migrate].lifecycle.preStop"),
            ("flask", "db", "upgrade"),
        ),
        Neighbour(
            "proxy",
            f"{init}[proxy]",
            "sidecar",
            (5432,),
            PreStop(None, 0.0, f"{init}[proxy].lifecycle.preStop"),
            ("--max-sigterm-delay=30s",),
        ),
        Neighbour(
            "2", f"{init}[2]", "init", (), PreStop(None, 0.0, f"{init}[2].lifecycle.preStop"), ()
        ),
        Neighbour(
            "envoy",
            f"{c}[envoy]",
            "container",
            (9901,),
            PreStop("sleep", 40.0, f"{c}[envoy].lifecycle.preStop"),
            ("envoy", "-c", "e.yaml"),
        ),
    )


@pytest.mark.parametrize(
    ("role", "runs"), [("container", True), ("sidecar", True), ("init", False)]
)
def test_neighbour_runs_with_the_app(role: str, runs: bool) -> None:
    assert Neighbour("n", "f", role, (), PreStop(), ()).runs_with_the_app is runs


BROKEN = "check it with kubectl apply --dry-run=client"
COMPLETE = "give the complete Deployment (render kustomize/helm output first)"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"kind": "Deployment", "metadata": {"name": "app"}},
            f"d.yaml: Deployment/app: spec: missing or not a mapping; {COMPLETE}",
        ),
        (
            {"kind": "Deployment", "metadata": {"name": "app"}, "spec": {"replicas": 1}},
            f"d.yaml: Deployment/app: spec.template: missing or not a mapping; {COMPLETE}",
        ),
        (
            {"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"template": {"x": 1}}},
            f"d.yaml: StatefulSet/db: spec.template.spec: missing or not a mapping; {COMPLETE}",
        ),
        (
            deployment(containers=[]).obj,
            "d.yaml: Deployment/app: spec.template.spec.containers: missing or not a non-empty "
            f"list; {COMPLETE}",
        ),
        (
            deployment(containers={"name": "web"}).obj,  # type: ignore[arg-type]
            "d.yaml: Deployment/app: spec.template.spec.containers: missing or not a non-empty "
            f"list; {COMPLETE}",
        ),
        (
            deployment(containers=["web"]).obj,
            "d.yaml: Deployment/app: cannot read this Deployment (containers must be mappings); "
            + BROKEN,
        ),
        (
            deployment(containers=[{"name": "web", "ports": [{"containerPort": "http"}]}]).obj,
            "d.yaml: Deployment/app: cannot read this Deployment (invalid literal for int() "
            f"with base 10: 'http'); {BROKEN}",
        ),
        (
            deployment(containers=[{"name": "web", "ports": [{"name": "http"}]}]).obj,
            f"d.yaml: Deployment/app: cannot read this Deployment ('containerPort'); {BROKEN}",
        ),
        (
            deployment(spec={"replicas": "three"}).obj,
            "d.yaml: Deployment/app: cannot read this Deployment (invalid literal for int() "
            f"with base 10: 'three'); {BROKEN}",
        ),
        (  # the rolling update as the controller would resolve it: refused in one line
            deployment(spec={"strategy": {"rollingUpdate": {"maxUnavailable": "abc"}}}).obj,
            "d.yaml: Deployment/app: cannot read this Deployment (maxUnavailable 'abc' is not a "
            f"number or percentage; use e.g. 1 or '25%'); {BROKEN}",
        ),
        (
            deployment(spec={"strategy": {"rollingUpdate": {"maxSurge": -1}}}).obj,
            f"d.yaml: Deployment/app: cannot read this Deployment (maxSurge -1 must not be negative); {BROKEN}",
        ),
        (
            deployment(containers=[{"name": "web", "env": "ZDT_DRAIN_SECONDS=5"}]).obj,
            "d.yaml: Deployment/app: cannot read this Deployment ('str' object has no "
            f"attribute 'get'); {BROKEN}",
        ),
    ],
)
def test_workloads_one_line_per_broken_workload(obj: dict[str, Any], message: str) -> None:
    found = list(workloads([Document("d.yaml", obj)]))
    assert len(found) == 1 and isinstance(found[0], ManifestError)
    assert str(found[0]) == message


def test_workloads_only_deployments_and_statefulsets() -> None:
    docs = [
        Document("d.yaml", {"kind": "Service", "metadata": {"name": "app"}}),
        deployment(),
        Document("d.yaml", {"kind": "DaemonSet", "metadata": {"name": "agent"}}),
        Document("d.yaml", {"kind": "Deployment", "metadata": {"name": "broken"}}),
        deployment(kind="StatefulSet"),
    ]
    found = [w.ref if isinstance(w, Workload) else str(w) for w in workloads(docs)]
    assert found == [
        "Deployment/app",
        f"d.yaml: Deployment/broken: spec: missing or not a mapping; {COMPLETE}",
        "StatefulSet/app",
    ]


def hpa(kind: str = "Deployment", name: str = "app", namespace: str | None = None) -> Document:
    metadata: dict[str, Any] = {"name": f"hpa-{kind}-{name}-{namespace}"}
    if namespace is not None:
        metadata["namespace"] = namespace
    obj = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {"scaleTargetRef": {"kind": kind, "name": name}, "minReplicas": 2},
    }
    return Document("h.yaml", obj)


@pytest.mark.parametrize(
    ("docs", "found"),
    [
        ([], None),
        ([hpa()], 0),
        ([hpa(kind="StatefulSet"), hpa(name="other"), hpa(namespace="prod")], None),
        ([hpa(name="other"), hpa()], 1),
        (  # not an HPA, even with the same target
            [Document("x.yaml", {"kind": "VerticalPodAutoscaler", "spec": hpa().obj["spec"]})],
            None,
        ),
        ([Document("x.yaml", {"kind": "HorizontalPodAutoscaler", "spec": "app"})], None),
        ([Document("x.yaml", {"kind": "HorizontalPodAutoscaler", "spec": "app"}), hpa()], 1),
        (
            [
                Document(
                    "x.yaml", {"kind": "HorizontalPodAutoscaler", "spec": {"scaleTargetRef": 1}}
                )
            ],
            None,
        ),
    ],
)
def test_autoscaler_for(docs: list[Document], found: int | None) -> None:
    w = one(deployment())
    assert autoscaler_for(w, docs) is (None if found is None else docs[found])


@pytest.mark.parametrize("least", ["2", 0, -1, True, 1.5])
def test_autoscaler_min_replicas_that_the_api_server_would_refuse_is_one_line(least: Any) -> None:
    doc = hpa()
    doc.obj["spec"]["minReplicas"] = least
    with pytest.raises(ManifestError) as caught:
        autoscaler_for(one(deployment()), [doc])
    assert str(caught.value) == (
        f"h.yaml: {doc.ref}: spec.minReplicas: {least!r} is not a whole number >= 1; write it "
        "as a number, e.g. minReplicas: 2"
    )


@pytest.mark.parametrize("least", [1, 2, 100, None])  # None: null, the default (1)
def test_autoscaler_min_replicas_a_whole_number_is_read(least: int | None) -> None:
    doc = hpa()
    doc.obj["spec"]["minReplicas"] = least
    assert autoscaler_for(one(deployment()), [doc]) is doc


def test_autoscaler_for_in_a_namespace() -> None:
    w = one(deployment(namespace="prod"))
    docs = [hpa(), hpa(namespace="prod")]
    assert autoscaler_for(w, docs) is docs[1]


@pytest.mark.parametrize(
    ("kind", "strategy"),
    [
        # Recreate ignores rollingUpdate; a StatefulSet's rollingUpdate is not the controller's
        ("Deployment", {"type": "Recreate", "rollingUpdate": {"maxUnavailable": "abc"}}),
        ("StatefulSet", {"rollingUpdate": {"maxUnavailable": "abc"}}),
    ],
)
def test_rolling_update_read_only_where_it_applies(kind: str, strategy: dict[str, Any]) -> None:
    key = "updateStrategy" if kind == "StatefulSet" else "strategy"
    assert one(deployment(spec={key: strategy}, kind=kind)).max_unavailable == "abc"


# --- the pod as its namespace and the kubelet complete it --------------------------------

KUBERNETES_LINKS = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
}


def namespace(name: str, **metadata: Any) -> Document:
    return Document("n.yaml", {"kind": "Namespace", "metadata": {"name": name, **metadata}})


def service(name: str, ns: str | None = None) -> Document:
    meta = {"name": name} if ns is None else {"name": name, "namespace": ns}
    spec = {"clusterIP": "10.0.0.9", "ports": [{"port": 80}]}
    return Document("s.yaml", {"kind": "Service", "metadata": meta, "spec": spec})


def read(*docs: Document) -> Workload:
    (w,) = [w for w in workloads(docs) if isinstance(w, Workload)]
    return w


def test_workload_extras_default() -> None:
    """No Namespace in the input, nothing but the Deployment: the kubelet's own links only."""
    w = one(deployment())
    assert (w.working_dir, dict(w.annotations), dict(w.base_env)) == (None, {}, KUBERNETES_LINKS)


@pytest.mark.parametrize(
    ("docs", "meshes"),
    [
        # the Deployment's namespace's labels and annotations decide injection
        ([namespace("shop", labels={"istio-injection": "enabled"})], {"shop": ["istio-proxy"]}),
        ([namespace("shop", annotations={"linkerd.io/inject": "enabled"})], {"shop": ["linkerd-proxy"]}),
        # a pod without metadata.namespace is in "default"
        ([namespace("default", labels={"istio-injection": "enabled"})], {None: ["istio-proxy"]}),
        # only a Namespace's metadata: another kind of the same name is not one
        (
            [Document("c.yaml", {"kind": "ConfigMap", "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}})],
            {None: []},
        ),
        ([namespace("shop", labels={"istio-injection": "disabled"})], {"shop": []}),
        ([namespace("shop", labels={"istio-injection": "enabled"})], {None: [], "other": []}),
        (
            [namespace("default", labels={"istio-injection": "enabled"}), namespace("shop")],
            {"shop": [], None: ["istio-proxy"]},
        ),
    ],
)  # fmt: skip
def test_namespace_injects_proxies(docs: list[Document], meshes: dict[Any, list[str]]) -> None:
    for ns, names in meshes.items():
        w = read(*docs, deployment(namespace=ns))
        assert [n.name for n in w.neighbours] == names, ns
        fields = {n.mesh.field for n in w.neighbours if n.mesh}
        assert fields <= {
            "Namespace.metadata.labels[istio-injection]",
            "Namespace.metadata.annotations[linkerd.io/inject]",
        }


@pytest.mark.parametrize(
    ("links", "expected"),
    [({}, True), ({"enableServiceLinks": True}, True), ({"enableServiceLinks": False}, False)],
)
def test_service_links_of_the_pods_namespace(links: dict[str, Any], expected: bool) -> None:
    w = read(service("db", "shop"), service("cache"), deployment(pod=links, namespace="shop"))
    db = {k: v for k, v in w.base_env.items() if k.startswith("DB_")}
    assert (db.get("DB_SERVICE_HOST"), "CACHE_SERVICE_HOST" in w.base_env) == (
        ("10.0.0.9" if expected else None),
        False,
    )
    assert ("KUBERNETES_PORT" in w.base_env) is expected


def test_env_is_read_in_the_workloads_namespace() -> None:
    cm = Document(
        "c.yaml",
        {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"A": "1"}},
    )
    container = {
        "name": "web",
        "command": ["gunicorn"],
        "envFrom": [{"configMapRef": {"name": "c"}}],
    }
    assert dict(read(cm, deployment(containers=[container], namespace="shop")).env) == {"A": "1"}
    assert dict(read(cm, deployment(containers=[container])).env) == {}


def test_working_dir_and_pod_annotations() -> None:
    container = {"name": "web", "command": ["gunicorn"], "workingDir": "/srv/app"}
    doc = deployment(containers=[container])
    doc.obj["spec"]["template"]["metadata"]["annotations"] = {"team": "shop", "n": 1}
    w = one(doc)
    assert (w.working_dir, dict(w.annotations)) == ("/srv/app", {"team": "shop", "n": "1"})


def test_the_app_container_is_the_one_with_zdt_env() -> None:
    """No command names gunicorn (an entrypoint script): the ZDT_* env tells the app's."""
    containers = [
        {"name": "proxy", "env": [{"name": "MODE", "value": "x"}]},
        {"name": "web", "env": [{"name": "ZDT_DRAIN_SECONDS", "value": "5"}]},
    ]
    assert one(deployment(containers=containers)).container_name == "web"
    assert one(deployment(containers=containers[:1] * 2)).container_name == "proxy"


def test_a_spec_that_is_not_a_mapping_is_named() -> None:
    doc = deployment()
    doc.obj["spec"] = ["not", "a", "mapping"]
    (err,) = workloads([doc])
    assert isinstance(err, ManifestError)
    assert "Deployment/app: spec: missing or not a mapping" in str(err)
