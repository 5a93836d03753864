"""Every message ``gunicorn-zdt check`` can print: a manifest that breaks it, one that passes.

Each case edits tests/manifests/good.yaml twice: once so the message must appear (its exact
line, and no other line of the same rule), once just across the edge so that it must not
(where a rule compares numbers, the passing edit sits on the boundary: equal, or one over).
The Gunicorn config is tests/manifests/gunicorn.conf.py, as in test_cli_check.py.

The cases run below the command line, in memory: ``cli.analyse_documents`` (what ``check``
does once the files are read) on the edited objects, then ``check_pod``. Gunicorn loads each
distinct (command, env) once per process, when this module is imported, because a config
load costs about 20 ms and these tables are the mutation run's tests of gunicorn_zdt/check/ and gunicorn_zdt/k8s/
(pyproject.toml [tool.mutmut]): mutmut forks every mutant's run from a process that has
imported this module. test_cli_check.py runs ``gunicorn-zdt check`` itself on files, and
:func:`test_the_command_prints_the_same_lines` pins that the command prints these lines.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gunicorn_zdt import cli
from gunicorn_zdt.check import app_config
from gunicorn_zdt.check import lb as lb_presets
from gunicorn_zdt.check.app_config import GunicornView
from gunicorn_zdt.check.pod import model_plan
from gunicorn_zdt.check.rules import check_pod
from gunicorn_zdt.core.plan import DrainPlan
from gunicorn_zdt.k8s import Document, Workload, gunicorn_argv, workloads

MANIFESTS = Path(__file__).resolve().parent / "manifests"
CONF = str(MANIFESTS / "gunicorn.conf.py")
GOOD: list[dict[str, Any]] = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
C = "spec.template.spec.containers[web]"

PID1_SHELL_FORM = (
    f"Deployment/app: {C}.command: error[pid1]: shell form (sh -c): the shell is PID 1 and "
    "does not pass SIGTERM to Gunicorn, which never drains and is SIGKILLed at the "
    'deadline; use exec form, command: ["gunicorn", ...] (or start the script with exec)'
)
PID1_DUMB_INIT_GROUP = (
    f"Deployment/app: {C}.command: error[pid1]: dumb-init sends SIGTERM to the whole "
    "process group: every worker stops at once instead of serving through the drain; run "
    "gunicorn directly (exec form) or use dumb-init --single-child"
)

Docs = list[dict[str, Any]]
Edit = Callable[[Docs], None]


def deployment(docs: Docs) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Deployment")


def pod_spec(docs: Docs) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(docs)["spec"]["template"]["spec"]
    return spec


def container(docs: Docs) -> dict[str, Any]:
    first: dict[str, Any] = pod_spec(docs)["containers"][0]
    return first


def of_kind(docs: Docs, kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def set_env(name: str, value: str | None) -> Edit:
    """Set (or with None remove) one env entry of the container."""

    # The cases mean a fixed drain: its maximum moves with its minimum.
    names = {name, "ZDT_DRAIN_MAX_SECONDS"} if name == "ZDT_DRAIN_SECONDS" else {name}

    def edit(docs: Docs) -> None:
        env = [e for e in container(docs)["env"] if e["name"] not in names]
        if value is not None:
            env += [{"name": n, "value": value} for n in sorted(names)]
        container(docs)["env"] = env

    return edit


def gunicorn_args(args: str) -> Edit:
    return set_env("GUNICORN_CMD_ARGS", args)


def setter(path: str, value: Any, root: Callable[[Docs], dict[str, Any]] = container) -> Edit:
    """Set a dotted path under ``root`` (default: the container); None deletes the key."""

    def edit(docs: Docs) -> None:
        node = root(docs)
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)

    return edit


def both(*edits: Edit) -> Edit:
    def edit(docs: Docs) -> None:
        for e in edits:
            e(docs)

    return edit


def nothing(docs: Docs) -> None:
    """The passing side of a message whose fix is good.yaml's own setting."""


def without_kind(kind: str) -> Edit:
    def edit(docs: Docs) -> None:
        docs[:] = [d for d in docs if d["kind"] != kind]

    return edit


def add_second_pdb(docs: Docs) -> None:
    second = copy.deepcopy(of_kind(docs, "PodDisruptionBudget"))
    second["metadata"]["name"] = "other"
    docs.append(second)


def prestop_sleep(seconds: int) -> Edit:
    return setter("lifecycle", {"preStop": {"sleep": {"seconds": seconds}}})


def service(docs: Docs) -> dict[str, Any]:
    return of_kind(docs, "Service")


def add_doc(doc: dict[str, Any]) -> Edit:
    def edit(docs: Docs) -> None:
        docs.append(copy.deepcopy(doc))

    return edit


def add_hpa(min_replicas: int | None) -> Edit:
    """A HorizontalPodAutoscaler scaling Deployment/app (None: minReplicas left to its 1)."""
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
        "maxReplicas": 10,
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return add_doc(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "app"},
            "spec": spec,
        }
    )


def add_proxy(role: str = "container", **fields: Any) -> Edit:
    """A second container, db-proxy, with ``fields`` (ports, lifecycle, args) on top.

    ``role``: ``container`` (plain, in containers), ``sidecar`` (native: an init container
    with restartPolicy: Always) or ``init`` (an init container that runs to completion).
    """

    def edit(docs: Docs) -> None:
        proxy: dict[str, Any] = {
            "name": "db-proxy",
            "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.0",
            "args": ["--port=5432", "project:region:instance"],
        }
        if role == "sidecar":
            proxy["restartPolicy"] = "Always"
        proxy.update(copy.deepcopy(fields))
        key = "containers" if role == "container" else "initContainers"
        pod_spec(docs).setdefault(key, []).append(proxy)

    return edit


def proxy_prestop(seconds: int) -> dict[str, Any]:
    return {"preStop": {"sleep": {"seconds": seconds}}}


def no_probe_listener(docs: Docs) -> None:
    """good.yaml without the probe listener: no ZDT_PROBE_BIND, every probe on port http."""
    set_env("ZDT_PROBE_BIND", None)(docs)
    c = container(docs)
    c["ports"] = [p for p in c["ports"] if p["name"] != "probes"]
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        c[kind]["httpGet"]["port"] = "http"


def metrics_service_port(target: Any) -> Edit:
    """The Service also publishes port 9090 (name: metrics) to ``target``."""
    return setter(
        "spec.ports",
        [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": target},
        ],
        service,
    )


def ingress_to(port: int) -> Edit:
    """An Ingress routing / to Service/app port http and /metrics to Service/app ``port``."""

    def backend(path: str, port: dict[str, Any]) -> dict[str, Any]:
        return {
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": "app", "port": port}},
        }

    return add_doc(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "app"},
            "spec": {
                "rules": [
                    {
                        "host": "app.example.com",
                        "http": {
                            "paths": [
                                backend("/", {"name": "http"}),
                                backend("/metrics", {"number": port}),
                            ]
                        },
                    }
                ]
            },
        }
    )


def statefulset(docs: Docs) -> dict[str, Any]:
    return of_kind(docs, "StatefulSet")


def add_container(name: str, key: str = "containers", **fields: Any) -> Edit:
    """Another container of the pod (``key``: containers or initContainers)."""

    def edit(docs: Docs) -> None:
        other = {"name": name, "image": f"{name}:1", **copy.deepcopy(fields)}
        pod_spec(docs).setdefault(key, []).append(other)

    return edit


def liveness_tcp(docs: Docs) -> None:
    container(docs)["livenessProbe"] = {"tcpSocket": {"port": "http"}, "timeoutSeconds": 2}


def services_first(*services: dict[str, Any]) -> Edit:
    """Services placed before good.yaml's own Service/app in the stream (edit it first)."""

    def edit(docs: Docs) -> None:
        at = docs.index(service(docs))
        docs[at:at] = copy.deepcopy(list(services))

    return edit


def other_service(
    name: str, selector: dict[str, str] | None, ports: list[Any], **meta: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **meta}, "spec": spec}


def http_route(*refs: dict[str, Any]) -> Edit:
    """An HTTPRoute whose one rule sends to ``refs``."""
    return add_doc(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "app"},
            "spec": {"rules": [{"backendRefs": list(refs)}]},
        }
    )


def ingress_default(port: dict[str, Any], namespace: str | None = None) -> Edit:
    """An Ingress whose defaultBackend is Service/app ``port``."""
    metadata: dict[str, Any] = {"name": "default"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return add_doc(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": metadata,
            "spec": {"defaultBackend": {"service": {"name": "app", "port": port}}},
        }
    )


def to_statefulset(docs: Docs) -> None:
    """Deployment/app as a StatefulSet (updateStrategy instead of strategy)."""
    d = deployment(docs)
    d["kind"] = "StatefulSet"
    d["spec"].pop("strategy", None)
    d["spec"]["serviceName"] = "app"
    d["spec"]["updateStrategy"] = {"type": "RollingUpdate"}


SIDECAR_TAIL = (
    ": a database or mesh proxy then takes the app's dependencies away in the middle of its "
    "drain (writes and readiness checks fail for the wrong reason); make it a native sidecar "
    "(move it to initContainers with restartPolicy: Always, Kubernetes >= 1.29: it stops "
    "after the app), or give it a preStop sleep of 28 s or more"
)
LISTENER_WHY = (
    "routes users to the probe listener's port 8081 (ZDT_PROBE_BIND): probes and /metrics "
    "are for the kubelet and Prometheus, and anyone who can reach them can flood them and "
    "get healthy pods restarted"
)


@dataclass(frozen=True)
class Case:
    rule: str
    breaks: Edit
    passes: Edit
    line: str  # the finding after "FILE: ", with {C} for the container's field path
    #: Rules whose findings the passing manifest may still have (it sits on another edge).
    allowed_when_passing: tuple[str, ...] = ()
    #: ``--lb`` for ``gunicorn-zdt check`` on both sides.
    lb: str | None = None
    #: Other lines of the same rule the breaking manifest cannot avoid (the cause of ``line``).
    along: tuple[str, ...] = ()


SIDECAR_PLAIN = (
    "Deployment/app: spec.template.spec.containers[db-proxy]: warning[sidecar]: it gets "
    "SIGTERM at the same moment as Gunicorn and may exit at once: a database or mesh proxy "
    "then takes the app's dependencies away in the middle of its drain (writes and "
    "readiness checks fail for the wrong reason); make it a native sidecar (move it to "
    "initContainers with restartPolicy: Always, Kubernetes >= 1.29: it stops after the "
    "app), or give it a preStop sleep of 28 s or more"
)

CASES: dict[str, Case] = {
    "grace-period-lower-graceful-timeout": Case(
        "grace-period",
        gunicorn_args("--graceful-timeout 24"),
        gunicorn_args("--graceful-timeout 23"),  # 0 + 5 + 23 + 2 = 30: exactly enough
        "Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
        "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + drain 5 + "
        "graceful_timeout 24 + margin 2 = 31; raise it to 31 or lower graceful_timeout to 23, "
        "so the kubelet's SIGKILL cannot cut a request",
    ),
    "grace-period-no-room": Case(
        "grace-period",
        both(
            setter("terminationGracePeriodSeconds", 7, pod_spec),
            set_env("ZDT_GRACE_PERIOD_SECONDS", "7"),
            gunicorn_args("--graceful-timeout 1"),
        ),
        both(
            setter("terminationGracePeriodSeconds", 8, pod_spec),
            set_env("ZDT_GRACE_PERIOD_SECONDS", "8"),
            gunicorn_args("--graceful-timeout 1 --timeout 1"),
        ),
        "Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
        "error[grace-period]: terminationGracePeriodSeconds 7 < preStop 0 + drain 5 + "
        "graceful_timeout 1 + margin 2 = 8; raise it to 8 (drain and preStop alone leave no "
        "room for graceful_timeout), so the kubelet's SIGKILL cannot cut a request",
    ),
    "prestop-grace": Case(
        "prestop-grace",
        both(prestop_sleep(31), set_env("ZDT_PRESTOP_SECONDS", "31")),
        # preStop == grace is not longer than it (grace-period reports the sum)
        both(prestop_sleep(30), set_env("ZDT_PRESTOP_SECONDS", "30")),
        f"Deployment/app: {C}.lifecycle.preStop: error[prestop-grace]: preStop 31 > "
        "terminationGracePeriodSeconds 30; the pod is killed before SIGTERM is even sent: "
        "shorten preStop or raise the grace period",
        allowed_when_passing=("grace-period",),
    ),
    "propagation": Case(
        "propagation",
        set_env("ZDT_MIN_PROPAGATION_SECONDS", "6"),
        set_env("ZDT_MIN_PROPAGATION_SECONDS", "5"),  # preStop 0 + drain 5 = 5: enough
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + drain 5 "
        "< propagation 6: new connections may still arrive after the listeners close; raise "
        "ZDT_DRAIN_SECONDS or add a preStop sleep",
    ),
    "worker-timeout": Case(
        "worker-timeout",
        gunicorn_args("--timeout 24"),
        gunicorn_args("--timeout 23"),  # graceful_timeout 23 (derived) == timeout: fine
        "Deployment/app: gunicorn.timeout: warning[worker-timeout]: graceful_timeout 23 < "
        "timeout 24: a request that runs longer than 23 s when the graceful stop begins is "
        "cut; lower timeout or raise graceful_timeout (and the grace period with it)",
    ),
    "keepalive": Case(
        "keepalive",
        gunicorn_args("--keep-alive 60"),
        gunicorn_args("--keep-alive 61"),  # longer than nginx's and AWS ALB's 60 s: fine
        "Deployment/app: gunicorn.keepalive: warning[keepalive]: keepalive 60 <= 60, the idle "
        "timeout of the pooling proxies usually in front (nginx upstream keepalive_timeout, "
        "AWS ALB): Gunicorn closes idle connections first, and a request the proxy sends on "
        "one at that moment fails (502; a POST is lost); raise keepalive above it, e.g. "
        "--keep-alive 75",
    ),
    "keepalive-lb": Case(
        "keepalive",
        gunicorn_args("--keep-alive 600"),
        gunicorn_args("--keep-alive 601"),
        "Deployment/app: gunicorn.keepalive: error[keepalive]: keepalive 600 <= 600, the load "
        "balancer's idle timeout: Gunicorn closes idle connections first, and a request the "
        "proxy sends on one at that moment fails (502; a POST is lost); raise keepalive above "
        "it, e.g. --keep-alive 615",
        lb="gke-neg",
        allowed_when_passing=("propagation",),
    ),
    "keepalive-lb-option": Case(
        "keepalive",
        gunicorn_args("--keep-alive 75"),  # the ready-made value, behind a 350 s balancer
        gunicorn_args("--keep-alive 351"),
        "Deployment/app: gunicorn.keepalive: error[keepalive]: keepalive 75 <= 350, the load "
        "balancer's idle timeout: Gunicorn closes idle connections first, and a request the "
        "proxy sends on one at that moment fails (502; a POST is lost); raise keepalive above "
        "it, e.g. --keep-alive 365",
        lb="kube-proxy:idle=350",
    ),
    "zdt-env-unknown-with-hint": Case(
        "zdt-env",
        set_env("ZDT_PROBE_PREFIXX", "/healthz"),
        set_env("ZDT_PROBE_PREFIX", "/healthz"),
        f"Deployment/app: {C}.env[ZDT_PROBE_PREFIXX]: warning[zdt-env]: unknown setting, "
        "ignored; did you mean ZDT_PROBE_PREFIX?",
    ),
    "zdt-env-unknown-no-hint": Case(
        "zdt-env",
        set_env("ZDT_COLOUR", "blue"),
        set_env("COLOUR", "blue"),  # not ours: not our business
        f"Deployment/app: {C}.env[ZDT_COLOUR]: warning[zdt-env]: unknown setting, ignored; "
        "see the configuration reference in the README",
    ),
    "zdt-env-invalid": Case(
        "zdt-env",
        set_env("ZDT_EXPOSE_REASONS", "maybe"),
        set_env("ZDT_EXPOSE_REASONS", "no"),
        f"Deployment/app: {C}.env[ZDT_EXPOSE_REASONS]: error[zdt-env]: "
        "ZDT_EXPOSE_REASONS='maybe' is not a boolean; use true or false",
    ),
    "zdt-env-value-from": Case(
        "zdt-env",
        both(
            set_env("ZDT_CHECK_TIMEOUT_SECONDS", None),
            lambda docs: container(docs)["env"].append(
                {
                    "name": "ZDT_CHECK_TIMEOUT_SECONDS",
                    "valueFrom": {"configMapKeyRef": {"name": "zdt", "key": "timeout"}},
                }
            ),
        ),
        set_env("ZDT_CHECK_TIMEOUT_SECONDS", "1"),
        f"Deployment/app: {C}.env[ZDT_CHECK_TIMEOUT_SECONDS]: warning[zdt-env]: its value "
        "comes from ConfigMap/zdt, which is not in the input: the check cannot see it and "
        "reads the config without it; pass that object too, or write the value in the manifest",
    ),
    "zdt-env-grace-missing": Case(
        "zdt-env",
        both(set_env("ZDT_GRACE_PERIOD_SECONDS", None), gunicorn_args("--graceful-timeout 23")),
        both(set_env("ZDT_GRACE_PERIOD_SECONDS", "30"), gunicorn_args("--graceful-timeout 23")),
        f"Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: warning[zdt-env]: not set: "
        "Gunicorn can neither derive graceful_timeout from the grace period nor refuse a "
        'budget that does not fit; set it to "30" (= terminationGracePeriodSeconds)',
    ),
    "zdt-env-grace-differs": Case(
        "zdt-env",
        both(set_env("ZDT_GRACE_PERIOD_SECONDS", "29"), gunicorn_args("--graceful-timeout 22")),
        both(set_env("ZDT_GRACE_PERIOD_SECONDS", "30"), gunicorn_args("--graceful-timeout 22")),
        f"Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: error[zdt-env]: "
        "ZDT_GRACE_PERIOD_SECONDS 29 != terminationGracePeriodSeconds 30: Gunicorn derives "
        'graceful_timeout for the wrong grace period; set it to "30"',
    ),
    "zdt-env-prestop-differs": Case(
        "zdt-env",
        both(prestop_sleep(3), set_env("ZDT_PRESTOP_SECONDS", "2")),
        both(prestop_sleep(3), set_env("ZDT_PRESTOP_SECONDS", "3")),
        f"Deployment/app: {C}.env[ZDT_PRESTOP_SECONDS]: error[zdt-env]: ZDT_PRESTOP_SECONDS 2 "
        f"!= preStop sleep 3 ({C}.lifecycle.preStop): Gunicorn derives graceful_timeout for "
        'the wrong preStop; set it to "3"',
    ),
    "pid1-no-command": Case(
        "pid1",
        setter("command", None),
        nothing,
        f"Deployment/app: {C}.command: warning[pid1]: not set: the image's entrypoint runs, "
        "and the check cannot see whether Gunicorn is PID 1 nor which config it loads; set "
        "command: [gunicorn, -c, CONF, APP]",
    ),
    "pid1-shell-form": Case(
        "pid1",
        setter("command", ["sh", "-c", "gunicorn -c conf.py example_app.wsgi:app"]),
        setter("command", ["sh", "-c", "exec gunicorn -c conf.py example_app.wsgi:app"]),
        PID1_SHELL_FORM,
    ),
    "pid1-dumb-init": Case(
        "pid1",
        setter("command", ["dumb-init", "gunicorn", "example_app.wsgi:app"]),
        setter("command", ["dumb-init", "--single-child", "gunicorn", "example_app.wsgi:app"]),
        PID1_DUMB_INIT_GROUP,
    ),
    "pid1-tini-group": Case(
        "pid1",
        setter("command", ["tini", "-g", "--", "gunicorn", "example_app.wsgi:app"]),
        setter("command", ["tini", "--", "gunicorn", "example_app.wsgi:app"]),
        f"Deployment/app: {C}.command: error[pid1]: tini -g sends SIGTERM to the whole process "
        "group: every worker stops at once instead of serving through the drain; drop -g, or "
        "run gunicorn directly",
    ),
    "pid1-not-gunicorn": Case(
        "pid1",
        setter("command", ["./entrypoint.sh"]),
        setter("command", ["python3", "-m", "gunicorn", "example_app.wsgi:app"]),
        f"Deployment/app: {C}.command: warning[pid1]: does not start gunicorn "
        "(./entrypoint.sh): the check cannot tell whether Gunicorn gets SIGTERM as PID 1; make "
        "the script end with exec gunicorn ..., and set command to it in exec form",
    ),
    "pid1-started-by-another-program": Case(
        "pid1",
        setter("command", ["honcho", "run", "gunicorn", "example_app.wsgi:app"]),
        setter("command", ["/usr/local/bin/gunicorn", "example_app.wsgi:app"]),
        f"Deployment/app: {C}.command: warning[pid1]: gunicorn is started by honcho: unless "
        "it execs gunicorn, SIGTERM reaches honcho instead of Gunicorn; end it with exec, or "
        "run gunicorn directly",
    ),
    "bind-unix-socket-only": Case(
        "bind",
        gunicorn_args("--bind unix:/tmp/app.sock"),
        gunicorn_args("--bind unix:/tmp/app.sock --bind 0.0.0.0:8080"),
        "Deployment/app: gunicorn.bind: error[bind]: Gunicorn binds only unix:/tmp/app.sock: "
        "the kubelet's probes and the Service need a TCP port; bind 0.0.0.0:PORT",
    ),
    "bind-loopback": Case(
        "bind",
        gunicorn_args("--bind localhost:8080"),
        gunicorn_args("--bind 0.0.0.0:8080"),
        "Deployment/app: gunicorn.bind: error[bind]: Gunicorn binds localhost:8080: only the "
        "pod itself can connect, not the probes nor the Service; bind 0.0.0.0:8080",
    ),
    "bind-port-not-declared": Case(
        "bind",
        setter("ports", [{"name": "http", "containerPort": 8081}]),
        setter(
            "ports",
            [
                {"name": "metrics", "containerPort": 9000},
                {"name": "http", "containerPort": 8080},
                {"name": "probes", "containerPort": 8081},
            ],
        ),
        f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 8080 but the container "
        "declares 8081; declare containerPort: 8080 (name: http) or set PORT to the declared "
        "port",
    ),
    "probe-path-readiness-missing": Case(
        "probe-path",
        setter("readinessProbe", None),
        nothing,
        f"Deployment/app: {C}.readinessProbe: error[probe-path]: missing: the pod gets "
        "traffic before it can serve, and the drain's 503 is never seen; add readinessProbe: "
        "httpGet /healthz/ready on port http",
    ),
    "probe-path-readiness-not-http": Case(
        "probe-path",
        setter("readinessProbe", {"tcpSocket": {"port": "http"}, "periodSeconds": 1}),
        setter(
            "readinessProbe",
            {
                "httpGet": {"path": "/healthz/ready", "port": "http"},
                "periodSeconds": 1,
                "timeoutSeconds": 2,
            },
        ),
        f"Deployment/app: {C}.readinessProbe.tcpSocket: error[probe-path]: tcpSocket "
        "readiness never sees the drain (it passes until the listeners close); use httpGet "
        "/healthz/ready",
    ),
    "probe-path-readiness-one-check": Case(
        "probe-path",
        setter("readinessProbe.httpGet.path", "/healthz/ready/db"),
        setter("readinessProbe.httpGet.path", "/healthz/ready?exclude=db"),
        f"Deployment/app: {C}.readinessProbe.httpGet.path: error[probe-path]: "
        "/healthz/ready/db runs one check only: the pod stays in the Service while any other "
        "check fails; use /healthz/ready (add ?exclude=NAME to skip a check)",
    ),
    "probe-path-readiness-elsewhere": Case(
        "probe-path",
        setter("readinessProbe.httpGet.path", "/ready"),
        both(
            set_env("ZDT_PROBE_PREFIX", "/probes"),
            setter("readinessProbe.httpGet.path", "/probes/ready"),
            setter("livenessProbe.httpGet.path", "/probes/live"),
            setter("startupProbe.httpGet.path", "/probes/startup"),
        ),
        f"Deployment/app: {C}.readinessProbe.httpGet.path: error[probe-path]: /ready is not "
        "the app's readiness endpoint; use /healthz/ready",
    ),
    "probe-path-startup-elsewhere": Case(
        "probe-path",
        setter("startupProbe.httpGet.path", "/healthz/live"),
        nothing,
        f"Deployment/app: {C}.startupProbe.httpGet.path: error[probe-path]: /healthz/live is "
        "not the app's startup endpoint; use /healthz/startup",
    ),
    "probe-path-liveness-elsewhere": Case(
        "probe-path",
        setter("livenessProbe.httpGet.path", "/healthz/startup"),
        nothing,
        f"Deployment/app: {C}.livenessProbe.httpGet.path: error[probe-path]: /healthz/startup "
        "is not the app's liveness endpoint; use /healthz/live",
    ),
    "probe-port-unknown-name": Case(
        "probe-port",
        setter("readinessProbe.httpGet.port", "web"),
        setter("readinessProbe.httpGet.port", 8080),
        f"Deployment/app: {C}.readinessProbe.httpGet.port: error[probe-port]: 'web' is not a "
        "port of container web; use http (Gunicorn binds 8080)",
    ),
    "probe-listener-liveness-on-app-port": Case(
        "probe-listener",
        setter("livenessProbe.httpGet.port", "http"),
        setter("livenessProbe.httpGet.port", "probes"),
        f"Deployment/app: {C}.livenessProbe.httpGet.port: warning[probe-listener]: liveness on "
        "the app's port 8080: 2 workers x 4 threads (gthread) can all be busy, and then the "
        "probe waits behind requests, times out, and the kubelet restarts a pod that is only "
        "busy; point the three probes at the probe listener's port 8081",
    ),
    "probe-port-other-port": Case(
        "probe-port",
        both(
            no_probe_listener,
            setter(
                "ports",
                [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 8081}],
            ),
            setter("livenessProbe.httpGet.port", "admin"),
        ),
        # the same pod, with the probe listener answering on admin's 8081
        both(
            no_probe_listener,
            setter(
                "ports",
                [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 8081}],
            ),
            setter("livenessProbe.httpGet.port", "admin"),
            set_env("ZDT_PROBE_BIND", "0.0.0.0:8081"),
        ),
        f"Deployment/app: {C}.livenessProbe.httpGet.port: error[probe-port]: port 8081 is not "
        "the port Gunicorn binds (8080): the probe never reaches the app; use http (or set "
        "ZDT_PROBE_BIND=0.0.0.0:8081 to answer it from the probe listener)",
    ),
    "probe-port-other-port-with-listener": Case(
        "probe-port",
        both(
            setter(
                "ports",
                [
                    {"name": "http", "containerPort": 8080},
                    {"name": "admin", "containerPort": 8081},
                    {"name": "probes", "containerPort": 8082},
                ],
            ),
            setter("livenessProbe.httpGet.port", "admin"),
            set_env("ZDT_PROBE_BIND", "0.0.0.0:8082"),
        ),
        both(
            setter(
                "ports",
                [
                    {"name": "http", "containerPort": 8080},
                    {"name": "admin", "containerPort": 8081},
                    {"name": "probes", "containerPort": 8082},
                ],
            ),
            setter("livenessProbe.httpGet.port", "probes"),
            set_env("ZDT_PROBE_BIND", "0.0.0.0:8082"),
        ),
        f"Deployment/app: {C}.livenessProbe.httpGet.port: error[probe-port]: port 8081 is not "
        "the port Gunicorn binds (8080): the probe never reaches the app; use http or the "
        "probe listener's 8082",
    ),
    "liveness-target-readiness": Case(
        "liveness-target",
        setter("livenessProbe.httpGet.path", "/healthz/ready"),
        setter("livenessProbe.httpGet.path", "/healthz/live"),
        f"Deployment/app: {C}.livenessProbe.httpGet.path: error[liveness-target]: liveness "
        "points at readiness (/healthz/ready): it fails during every drain and whenever a "
        "dependency is down, so the kubelet restarts healthy pods; use /healthz/live",
    ),
    "liveness-target-dependency": Case(
        "liveness-target",
        setter("livenessProbe.httpGet.path", "/healthz/ready/db"),
        setter("livenessProbe.httpGet.path", "/healthz/live"),
        f"Deployment/app: {C}.livenessProbe.httpGet.path: error[liveness-target]: liveness "
        "points at a dependency check (/healthz/ready/db): when that dependency is down the "
        "kubelet restarts every pod at once; use /healthz/live",
    ),
    "readiness-period": Case(
        "readiness-period",
        both(
            setter("readinessProbe.periodSeconds", 3), setter("readinessProbe.failureThreshold", 2)
        ),
        # 5 x 1 = 5 s = the drain: the pod turns NotReady just in time
        both(
            setter("readinessProbe.periodSeconds", 5), setter("readinessProbe.failureThreshold", 1)
        ),
        f"Deployment/app: {C}.readinessProbe.periodSeconds: warning[readiness-period]: "
        "periodSeconds 3 x failureThreshold 2 = 6 s > drain 5: the pod turns NotReady only "
        "after the listeners closed, and load balancers that follow pod readiness keep routing "
        "to it; lower them so that periodSeconds x failureThreshold <= 5, e.g. periodSeconds: "
        "1, failureThreshold: 3",
    ),
    "readiness-period-short-drain": Case(
        "readiness-period",
        both(
            set_env("ZDT_DRAIN_SECONDS", "1.5"),
            set_env("ZDT_MIN_PROPAGATION_SECONDS", "1"),
            setter("readinessProbe.periodSeconds", 1),
            setter("readinessProbe.failureThreshold", 2),
        ),
        both(
            set_env("ZDT_DRAIN_SECONDS", "2"),
            set_env("ZDT_MIN_PROPAGATION_SECONDS", "1"),
            setter("readinessProbe.periodSeconds", 1),
            setter("readinessProbe.failureThreshold", 2),
        ),
        f"Deployment/app: {C}.readinessProbe.periodSeconds: warning[readiness-period]: "
        "periodSeconds 1 x failureThreshold 2 = 2 s > drain 1.5: the pod turns NotReady only "
        "after the listeners closed, and load balancers that follow pod readiness keep routing "
        "to it; lower them so that periodSeconds x failureThreshold <= 1.5, e.g. periodSeconds: "
        "1, failureThreshold: 1",
    ),
    "check-timeout-readiness": Case(
        "check-timeout",
        setter("readinessProbe.timeoutSeconds", 1),
        setter("readinessProbe.timeoutSeconds", 2),  # must exceed the check's 1 s
        f"Deployment/app: {C}.readinessProbe.timeoutSeconds: warning[check-timeout]: "
        "timeoutSeconds 1 <= ZDT_CHECK_TIMEOUT_SECONDS 1: the kubelet gives up before a slow "
        "check answers and counts a timeout instead; set timeoutSeconds: 2 or more",
    ),
    "check-timeout-startup": Case(
        "check-timeout",
        both(
            set_env("ZDT_CHECK_TIMEOUT_SECONDS", "2.5"),
            setter("readinessProbe.timeoutSeconds", 3),
            setter("startupProbe.timeoutSeconds", 2),
        ),
        both(
            set_env("ZDT_CHECK_TIMEOUT_SECONDS", "2.5"),
            setter("readinessProbe.timeoutSeconds", 3),
            setter("startupProbe.timeoutSeconds", 3),
        ),
        f"Deployment/app: {C}.startupProbe.timeoutSeconds: warning[check-timeout]: "
        "timeoutSeconds 2 <= ZDT_CHECK_TIMEOUT_SECONDS 2.5: the kubelet gives up before a slow "
        "check answers and counts a timeout instead; set timeoutSeconds: 3 or more",
    ),
    "startup-probe": Case(
        "startup-probe",
        both(setter("startupProbe", None), setter("livenessProbe.initialDelaySeconds", 29)),
        both(setter("startupProbe", None), setter("livenessProbe.initialDelaySeconds", 30)),
        f"Deployment/app: {C}.startupProbe: warning[startup-probe]: missing while "
        "livenessProbe starts after initialDelaySeconds 29: a start slower than about 59 s "
        "(imports, database, migrations) is killed and restarted in a loop; add startupProbe: "
        "httpGet /healthz/startup on port http, e.g. periodSeconds: 1, failureThreshold: 30",
    ),
    "max-unavailable-recreate": Case(
        "max-unavailable",
        setter("spec.strategy", {"type": "Recreate"}, deployment),
        nothing,
        "Deployment/app: spec.strategy.type: error[max-unavailable]: Recreate stops every pod "
        "before new ones start; use RollingUpdate and set maxUnavailable: 0 and maxSurge: 1",
    ),
    "max-unavailable-set": Case(
        "max-unavailable",
        setter("spec.strategy.rollingUpdate.maxUnavailable", "34%", deployment),
        setter("spec.strategy.rollingUpdate.maxUnavailable", "33%", deployment),  # 0.99 -> 0
        "Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: error[max-unavailable]: "
        "maxUnavailable 34% lets 1 of 3 pods go before their replacements are ready (33 % of "
        "the capacity during every rollout); set maxUnavailable: 0 and maxSurge: 1",
    ),
    "max-unavailable-default-resolves-to-zero": Case(
        "max-unavailable",
        setter("spec.strategy", None, deployment),
        nothing,
        "Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: warning[max-unavailable]: "
        "not set: the default 25% resolves to 0 only while replicas < 4 (3 now); set "
        "maxUnavailable: 0 and maxSurge: 1 explicitly",
    ),
    "max-unavailable-few-replicas": Case(
        "max-unavailable",
        both(
            setter("spec.replicas", 10, deployment),
            setter("spec.strategy.rollingUpdate.maxUnavailable", 1, deployment),
        ),
        # above FEW_REPLICAS one pod is under 10 % of the capacity: allowed
        both(
            setter("spec.replicas", 11, deployment),
            setter("spec.strategy.rollingUpdate.maxUnavailable", 1, deployment),
        ),
        "Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: error[max-unavailable]: "
        "maxUnavailable 1 lets 1 of 10 pods go before their replacements are ready (10 % of "
        "the capacity during every rollout); set maxUnavailable: 0 and maxSurge: 1",
    ),
    "pdb-missing": Case(
        "pdb",
        without_kind("PodDisruptionBudget"),
        nothing,
        "Deployment/app: spec.template.metadata.labels: warning[pdb]: no "
        "PodDisruptionBudget selects these pods: a node drain may evict several at once; add "
        "one with maxUnavailable: 1 (k8s/pdb.yaml)",
    ),
    "pdb-other-namespace": Case(
        "pdb",
        setter("metadata.namespace", "elsewhere", lambda d: of_kind(d, "PodDisruptionBudget")),
        both(
            setter("metadata.namespace", "elsewhere", lambda d: of_kind(d, "PodDisruptionBudget")),
            setter("metadata.namespace", "elsewhere", deployment),
            setter("metadata.namespace", "elsewhere", lambda d: of_kind(d, "Service")),
        ),
        "Deployment/app: spec.template.metadata.labels: warning[pdb]: no "
        "PodDisruptionBudget selects these pods: a node drain may evict several at once; add "
        "one with maxUnavailable: 1 (k8s/pdb.yaml)",
    ),
    "pdb-duplicate": Case(
        "pdb",
        add_second_pdb,
        both(add_second_pdb, setter("spec.selector.matchLabels.app", "other", lambda d: d[-1])),
        "Deployment/app: spec.template.metadata.labels: error[pdb]: "
        "PodDisruptionBudget/app, PodDisruptionBudget/other all select these pods: the "
        "eviction API refuses pods with more than one budget and node drains hang; keep one",
    ),
    "pdb-blocking-max-unavailable": Case(
        "pdb",
        setter("spec.maxUnavailable", 0, lambda d: of_kind(d, "PodDisruptionBudget")),
        setter("spec.maxUnavailable", "1%", lambda d: of_kind(d, "PodDisruptionBudget")),
        "PodDisruptionBudget/app: spec.maxUnavailable: error[pdb]: maxUnavailable 0 with 3 "
        "replicas (Deployment/app) allows no eviction: every node drain blocks until someone "
        "deletes the pod by hand; use maxUnavailable: 1",
    ),
    "pdb-blocking-min-available": Case(
        "pdb",
        setter(
            "spec",
            {"minAvailable": "67%", "selector": {"matchLabels": {"app": "app"}}},
            lambda d: of_kind(d, "PodDisruptionBudget"),
        ),
        setter(
            "spec",
            {"minAvailable": "66%", "selector": {"matchLabels": {"app": "app"}}},
            lambda d: of_kind(d, "PodDisruptionBudget"),
        ),
        "PodDisruptionBudget/app: spec.minAvailable: error[pdb]: minAvailable 67% with 3 "
        "replicas (Deployment/app) allows no eviction: every node drain blocks until someone "
        "deletes the pod by hand; use maxUnavailable: 1",
    ),
    "service-port-unknown-name": Case(
        "service-port",
        setter(
            "spec.ports",
            [{"name": "http", "port": 80, "targetPort": "web"}],
            lambda d: of_kind(d, "Service"),
        ),
        setter(
            "spec.ports",
            [{"name": "http", "port": 80, "targetPort": 8080}],
            lambda d: of_kind(d, "Service"),
        ),
        "Service/app: spec.ports[http].targetPort: error[service-port]: 'web' is not a port "
        "of container web: the Service sends traffic nowhere; use targetPort: http",
    ),
    "service-port-other-port": Case(
        "service-port",
        setter("spec.ports", [{"port": 8082}], service),  # 8081 is the probe listener's
        setter("spec.ports", [{"port": 8080}], service),
        "Service/app: spec.ports[0].targetPort: error[service-port]: 8082 is not the port "
        "Gunicorn binds (8080): the Service sends traffic nowhere; use targetPort: http",
    ),
    "prestop-exec-sleep": Case(
        "prestop-exec-sleep",
        both(
            setter("lifecycle", {"preStop": {"exec": {"command": ["sleep", "3"]}}}),
            set_env("ZDT_PRESTOP_SECONDS", "3"),
        ),
        both(prestop_sleep(3), set_env("ZDT_PRESTOP_SECONDS", "3")),
        f"Deployment/app: {C}.lifecycle.preStop.exec: warning[prestop-exec-sleep]: exec sleep "
        "3 needs a sleep binary in the image: in distroless or scratch images the hook fails "
        "and SIGTERM comes at once; use lifecycle.preStop.sleep.seconds: 3 (Kubernetes >= "
        "1.30)",
    ),
    "lb-deregistration": Case(
        "lb-deregistration",
        gunicorn_args("--graceful-timeout 24 --timeout 24"),
        # the delay 28 = the graceful deadline 0 + 5 + 23: the pod is done as it closes
        gunicorn_args("--graceful-timeout 23 --timeout 23"),
        "Deployment/app: --lb aws-alb: warning[lb-deregistration]: deregistration delay 28 < "
        "preStop 0 + drain 5 + graceful_timeout 24 = 29: the load balancer closes connections "
        "of requests the pod is still answering; raise the delay to 29 (e.g. "
        "deregistration_delay.timeout_seconds) or lower graceful_timeout",
        lb="aws-alb:interval=1,threshold=2,delay=28",
    ),
    "replicas-one": Case(
        "replicas",
        setter("spec.replicas", 1, deployment),
        setter("spec.replicas", 2, deployment),
        "Deployment/app: spec.replicas: warning[replicas]: 1 replica: a rollout surges a new "
        "pod first, but a node drain or eviction deletes the only pod before a replacement is "
        "ready, and nothing serves meanwhile; run 2 or more, with a PodDisruptionBudget "
        "maxUnavailable: 1",
    ),
    "replicas-statefulset-one": Case(
        "replicas",
        both(to_statefulset, setter("spec.replicas", 1, statefulset)),
        both(to_statefulset, setter("spec.replicas", 2, statefulset)),
        "StatefulSet/app: spec.replicas: error[replicas]: 1 replica: a StatefulSet deletes "
        "each pod before it starts its replacement (podManagementPolicy OrderedReady changes "
        "only scaling), so every rollout and every node drain leaves nothing serving; run 2 "
        "or more",
    ),
    "replicas-hpa-min-one": Case(
        "replicas",
        both(setter("spec.replicas", None, deployment), add_hpa(None)),  # the default: 1
        both(setter("spec.replicas", None, deployment), add_hpa(2)),
        "HorizontalPodAutoscaler/app: spec.minReplicas: warning[replicas]: "
        "HorizontalPodAutoscaler/app minReplicas 1: a rollout surges a new pod first, but a "
        "node drain or eviction deletes the only pod before a replacement is ready, and "
        "nothing serves meanwhile; run 2 or more, with a PodDisruptionBudget maxUnavailable: 1",
    ),
    "replicas-hpa-and-spec-replicas": Case(
        "replicas",
        add_hpa(3),
        both(setter("spec.replicas", None, deployment), add_hpa(3)),
        "Deployment/app: spec.replicas: warning[replicas]: HorizontalPodAutoscaler/app scales "
        "this Deployment, yet spec.replicas is 3: every kubectl apply sets the count back and "
        "removes the pods the autoscaler added at once; remove spec.replicas (the autoscaler "
        "owns it)",
    ),
    "sidecar-plain": Case(
        "sidecar",
        add_proxy(),
        add_proxy("sidecar"),  # a native sidecar stops after the app
        SIDECAR_PLAIN,
    ),
    "sidecar-after-an-init-container": Case(
        "sidecar",
        both(add_container("migrate", "initContainers"), add_proxy()),
        both(add_container("migrate", "initContainers"), add_proxy("sidecar")),
        SIDECAR_PLAIN,
    ),
    "sidecar-short-prestop": Case(
        "sidecar",
        add_proxy(lifecycle=proxy_prestop(27)),
        add_proxy(lifecycle=proxy_prestop(28)),  # = the graceful deadline 0 + 5 + 23
        "Deployment/app: spec.template.spec.containers[db-proxy].lifecycle.preStop: "
        "warning[sidecar]: its preStop sleep 27 s ends before Gunicorn's graceful deadline "
        "(preStop + drain + graceful_timeout = 28 s): a database or mesh proxy then takes the "
        "app's dependencies away in the middle of its drain (writes and readiness checks fail "
        "for the wrong reason); make it a native sidecar (move it to initContainers with "
        "restartPolicy: Always, Kubernetes >= 1.29: it stops after the app), or give it a "
        "preStop sleep of 28 s or more",
    ),
    "sidecar-sigterm-delay": Case(
        "sidecar",
        add_proxy(args=["--port=5432", "--max-sigterm-delay=27s", "project:region:instance"]),
        add_proxy(args=["--port=5432", "--max-sigterm-delay=28s", "project:region:instance"]),
        "Deployment/app: spec.template.spec.containers[db-proxy].args: warning[sidecar]: "
        "--max-sigterm-delay 27 s ends before Gunicorn's graceful deadline (28 s): a database "
        "or mesh proxy then takes the app's dependencies away in the middle of its drain "
        "(writes and readiness checks fail for the wrong reason); raise --max-sigterm-delay "
        "to 28s, or make it a native sidecar (move it to initContainers with restartPolicy: "
        "Always, Kubernetes >= 1.29: it stops after the app), or give it a preStop sleep of 28 "
        "s or more",
    ),
    "port-clash-listener": Case(
        "port-clash",
        add_proxy("sidecar", ports=[{"name": "admin", "containerPort": 8081}]),
        add_proxy("sidecar", ports=[{"name": "admin", "containerPort": 8082}]),
        "Deployment/app: spec.template.spec.initContainers[db-proxy].ports: error[port-clash]: "
        "containerPort 8081 is the probe listener's: the containers of a pod share one "
        "network, so one of the two cannot bind it and probes or the Service reach the wrong "
        "process; give it another port",
    ),
    "port-clash-app-port": Case(
        "port-clash",
        add_proxy("sidecar", ports=[{"name": "admin", "containerPort": 8080}]),
        # an init container is done before Gunicorn binds: it may use the port
        add_proxy("init", ports=[{"name": "admin", "containerPort": 8080}]),
        "Deployment/app: spec.template.spec.initContainers[db-proxy].ports: error[port-clash]: "
        "containerPort 8080 is the port Gunicorn binds: the containers of a pod share one "
        "network, so one of the two cannot bind it and probes or the Service reach the wrong "
        "process; give it another port",
    ),
    "listener-exposed-service": Case(
        "listener-exposed",
        metrics_service_port("probes"),
        metrics_service_port("http"),
        "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
        + LISTENER_WHY
        + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, not "
        "through a Service)",
    ),
    "listener-exposed-ingress": Case(
        "listener-exposed",
        both(metrics_service_port(8081), ingress_to(9090)),
        both(metrics_service_port("http"), ingress_to(9090)),
        "Ingress/app: spec.rules[0].http.paths[1].backend: error[listener-exposed]: "
        "Service/app port 9090 " + LISTENER_WHY + "; point it at the app's port",
        along=(
            "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
            + LISTENER_WHY
            + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, "
            "not through a Service)",
        ),
    ),
    "probe-listener-none-yet": Case(
        "probe-listener",
        no_probe_listener,
        both(no_probe_listener, liveness_tcp),  # a tcpSocket liveness does not wait on a worker
        f"Deployment/app: {C}.livenessProbe.httpGet.port: warning[probe-listener]: liveness on "
        "the app's port 8080: 2 workers x 4 threads (gthread) can all be busy, and then the "
        "probe waits behind requests, times out, and the kubelet restarts a pod that is only "
        "busy; set ZDT_PROBE_BIND=0.0.0.0:8081, declare containerPort 8081 (name: probes) and "
        "point the three probes at port: probes",
    ),
    "probe-listener-8081-taken": Case(
        "probe-listener",
        both(
            no_probe_listener,
            setter(
                "ports",
                [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 8081}],
            ),
        ),
        both(no_probe_listener, setter("livenessProbe", None)),
        f"Deployment/app: {C}.livenessProbe.httpGet.port: warning[probe-listener]: liveness on "
        "the app's port 8080: 2 workers x 4 threads (gthread) can all be busy, and then the "
        "probe waits behind requests, times out, and the kubelet restarts a pod that is only "
        "busy; set ZDT_PROBE_BIND=0.0.0.0:18081, declare containerPort 18081 (name: probes) "
        "and point the three probes at port: probes",
    ),
    "propagation-lb-serving": Case(
        "propagation",
        setter("readinessProbe.periodSeconds", 3),  # 0 + 3 x 2 + 1 = 7
        nothing,  # 0 + 2 x 2 + 1 = 5 = preStop 0 + drain 5
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + drain 5 "
        "< propagation 7 (--lb serving: preStop 0 + readiness 3 s x 2 + sync 1): new "
        "connections may still arrive after the listeners close; raise ZDT_DRAIN_SECONDS by 2 "
        "or lower the readiness probe's periodSeconds x failureThreshold (a preStop sleep does "
        "not help: the pod stays ready while it sleeps)",
        allowed_when_passing=(),
        lb="serving",
    ),
    "propagation-lb-serving-no-readiness": Case(
        "propagation",
        setter("readinessProbe", None),  # Kubernetes' defaults: 10 s x 3
        nothing,
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + drain 5 "
        "< propagation 31 (--lb serving: preStop 0 + readiness 10 s x 3 + sync 1): new "
        "connections may still arrive after the listeners close; raise ZDT_DRAIN_SECONDS by 26 "
        "or lower the readiness probe's periodSeconds x failureThreshold (a preStop sleep does "
        "not help: the pod stays ready while it sleeps)",
        lb="serving",
    ),
    "propagation-lb-health-check": Case(
        "propagation",
        both(prestop_sleep(3), set_env("ZDT_PRESTOP_SECONDS", "3")),  # 30 - 3 - 5 = 22 short
        # the container's own 5 s wins over the preset's 30 s, and 0 + 5 covers it
        set_env("ZDT_MIN_PROPAGATION_SECONDS", "5"),
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 3 + drain 5 "
        "< propagation 30 (--lb cloud: health check 10 s x 3 + sync 0): new connections may "
        "still arrive after the listeners close; add a native preStop sleep of 22 s "
        "(lifecycle.preStop.sleep.seconds, ZDT_PRESTOP_SECONDS and the grace period with it), "
        "or lower the load balancer's health-check interval x unhealthy threshold",
        allowed_when_passing=("propagation",),
        lb="cloud",
    ),
    "propagation-lb-equals-own": Case(
        "propagation",
        set_env("ZDT_MIN_PROPAGATION_SECONDS", "6"),  # the preset's 2 x 3 = 6 = the container's
        both(
            prestop_sleep(1),
            set_env("ZDT_PRESTOP_SECONDS", "1"),
            set_env("ZDT_MIN_PROPAGATION_SECONDS", "6"),
        ),
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + drain 5 "
        "< propagation 6 (--lb cloud: health check 2 s x 3 + sync 0): new connections may "
        "still arrive after the listeners close; add a native preStop sleep of 1 s "
        "(lifecycle.preStop.sleep.seconds, ZDT_PRESTOP_SECONDS and the grace period with it), "
        "or lower the load balancer's health-check interval x unhealthy threshold",
        lb="cloud:interval=2,threshold=3",
    ),
    "propagation-own-above-lb": Case(
        "propagation",
        set_env("ZDT_MIN_PROPAGATION_SECONDS", "7"),  # the container's 7 > the preset's 6
        both(
            prestop_sleep(2),
            set_env("ZDT_PRESTOP_SECONDS", "2"),
            set_env("ZDT_MIN_PROPAGATION_SECONDS", "7"),
        ),
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + drain 5 "
        "< propagation 7: new connections may still arrive after the listeners close; raise "
        "ZDT_DRAIN_SECONDS or add a preStop sleep",
        lb="cloud:interval=2,threshold=3",
    ),
    "readiness-period-not-http": Case(
        "readiness-period",
        both(
            setter("readinessProbe.periodSeconds", 3), setter("readinessProbe.failureThreshold", 2)
        ),
        # a tcpSocket readiness never sees the drain at all: probe-path says so, not this rule
        setter(
            "readinessProbe",
            {"tcpSocket": {"port": "http"}, "periodSeconds": 3, "failureThreshold": 2},
        ),
        f"Deployment/app: {C}.readinessProbe.periodSeconds: warning[readiness-period]: "
        "periodSeconds 3 x failureThreshold 2 = 6 s > drain 5: the pod turns NotReady only "
        "after the listeners closed, and load balancers that follow pod readiness keep routing "
        "to it; lower them so that periodSeconds x failureThreshold <= 5, e.g. periodSeconds: "
        "1, failureThreshold: 3",
        allowed_when_passing=("probe-path",),
    ),
    "readiness-period-drain-one": Case(
        "readiness-period",
        both(
            set_env("ZDT_DRAIN_SECONDS", "1"),
            set_env("ZDT_MIN_PROPAGATION_SECONDS", "1"),
            gunicorn_args("--keep-alive 0"),
            setter("readinessProbe.periodSeconds", 1),
        ),
        # no drain at all: nothing to notice (propagation reports the missing drain)
        both(
            set_env("ZDT_DRAIN_SECONDS", "0"),
            gunicorn_args("--keep-alive 0"),
            setter("readinessProbe.periodSeconds", 1),
        ),
        f"Deployment/app: {C}.readinessProbe.periodSeconds: warning[readiness-period]: "
        "periodSeconds 1 x failureThreshold 2 = 2 s > drain 1: the pod turns NotReady only "
        "after the listeners closed, and load balancers that follow pod readiness keep routing "
        "to it; lower them so that periodSeconds x failureThreshold <= 1, e.g. periodSeconds: "
        "1, failureThreshold: 1",
        allowed_when_passing=("propagation",),
    ),
    "bind-loopback-ipv4": Case(
        "bind",
        gunicorn_args("--bind 127.0.0.1:8080"),
        gunicorn_args("--bind 0.0.0.0:8080"),
        "Deployment/app: gunicorn.bind: error[bind]: Gunicorn binds 127.0.0.1:8080: only the "
        "pod itself can connect, not the probes nor the Service; bind 0.0.0.0:8080",
    ),
    "bind-loopback-ipv6": Case(
        "bind",
        gunicorn_args("--bind [::1]:8080"),
        gunicorn_args("--bind [::]:8080"),
        "Deployment/app: gunicorn.bind: error[bind]: Gunicorn binds ::1:8080: only the pod "
        "itself can connect, not the probes nor the Service; bind 0.0.0.0:8080",
    ),
    "bind-unix-sockets-only": Case(
        "bind",
        gunicorn_args("--bind unix:/tmp/a.sock --bind unix:/tmp/b.sock"),
        gunicorn_args("--bind unix:/tmp/a.sock --bind 0.0.0.0:8080"),
        "Deployment/app: gunicorn.bind: error[bind]: Gunicorn binds only unix:/tmp/a.sock, "
        "unix:/tmp/b.sock: the kubelet's probes and the Service need a TCP port; bind "
        "0.0.0.0:PORT",
    ),
    "bind-no-port-declared": Case(
        "bind",
        setter("ports", None),
        nothing,
        f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 8080 but the container "
        "declares none; declare containerPort: 8080 (name: http) or set PORT to the declared "
        "port",
    ),
    "pid1-shell-form-indented-exec": Case(
        "pid1",
        setter("command", ["sh", "-c", "  gunicorn example_app.wsgi:app"]),
        setter("command", ["sh", "-c", "  exec gunicorn example_app.wsgi:app"]),
        PID1_SHELL_FORM,
    ),
    "pid1-dumb-init-options-end": Case(
        "pid1",
        # gunicorn's own -c after -- is not dumb-init's -c (--single-child)
        setter("command", ["dumb-init", "--", "gunicorn", "-c", "conf.py", "example_app.wsgi:app"]),
        setter("command", ["dumb-init", "-c", "gunicorn", "-c", "conf.py", "example_app.wsgi:app"]),
        PID1_DUMB_INIT_GROUP,
    ),
    "pid1-python-runs-a-script": Case(
        "pid1",
        setter("command", ["python3", "-u", "run.py", "-m", "gunicorn"]),
        # the interpreter's own options before -m gunicorn: Gunicorn is the process
        setter(
            "command", ["python3", "-u", "-W", "ignore", "-m", "gunicorn", "example_app.wsgi:app"]
        ),
        f"Deployment/app: {C}.command: warning[pid1]: gunicorn is started by python3: unless it "
        "execs gunicorn, SIGTERM reaches python3 instead of Gunicorn; end it with exec, or run "
        "gunicorn directly",
    ),
    "pid1-python-module-not-gunicorn": Case(
        "pid1",
        setter("command", ["python", "-m", "honcho", "start", "gunicorn"]),
        setter("command", ["python", "-X", "dev", "-m", "gunicorn", "example_app.wsgi:app"]),
        f"Deployment/app: {C}.command: warning[pid1]: gunicorn is started by python: unless it "
        "execs gunicorn, SIGTERM reaches python instead of Gunicorn; end it with exec, or run "
        "gunicorn directly",
    ),
    "probe-path-startup-after-tcp-liveness": Case(
        "probe-path",
        both(liveness_tcp, setter("startupProbe.httpGet.path", "/healthz/live")),
        liveness_tcp,
        f"Deployment/app: {C}.startupProbe.httpGet.path: error[probe-path]: /healthz/live is "
        "not the app's startup endpoint; use /healthz/startup",
    ),
    "probe-path-startup-on-readiness": Case(
        "probe-path",
        # liveness on a dependency check is liveness-target's finding, not this rule's
        both(
            setter("livenessProbe.httpGet.path", "/healthz/ready/db"),
            setter("startupProbe.httpGet.path", "/healthz/ready"),
        ),
        setter("livenessProbe.httpGet.path", "/healthz/ready/db"),
        f"Deployment/app: {C}.startupProbe.httpGet.path: error[probe-path]: /healthz/ready is "
        "not the app's startup endpoint; use /healthz/startup",
        allowed_when_passing=("liveness-target",),
    ),
    "probe-port-startup": Case(
        "probe-port",
        setter("startupProbe.httpGet.port", "web"),
        setter("startupProbe.httpGet.port", "http"),
        f"Deployment/app: {C}.startupProbe.httpGet.port: error[probe-port]: 'web' is not a "
        "port of container web; use http (Gunicorn binds 8080)",
    ),
    "liveness-target-missing-liveness": Case(
        "liveness-target",
        setter("livenessProbe.httpGet.path", "/healthz/ready?exclude=db"),
        setter("livenessProbe", None),  # no liveness probe: nothing to point anywhere
        f"Deployment/app: {C}.livenessProbe.httpGet.path: error[liveness-target]: liveness "
        "points at readiness (/healthz/ready?exclude=db): it fails during every drain and "
        "whenever a dependency is down, so the kubelet restarts healthy pods; use /healthz/live",
    ),
    "max-unavailable-unset-four-replicas": Case(
        "max-unavailable",
        both(setter("spec.strategy", None, deployment), setter("spec.replicas", 4, deployment)),
        setter("spec.replicas", 4, deployment),
        "Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: error[max-unavailable]: "
        "not set (default 25%): maxUnavailable 25% lets 1 of 4 pods go before their "
        "replacements are ready (25 % of the capacity during every rollout); set "
        "maxUnavailable: 0 and maxSurge: 1",
    ),
    "max-unavailable-two-of-three": Case(
        "max-unavailable",
        setter("spec.strategy.rollingUpdate.maxUnavailable", 2, deployment),
        setter("spec.strategy.rollingUpdate.maxUnavailable", 0, deployment),
        "Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: error[max-unavailable]: "
        "maxUnavailable 2 lets 2 of 3 pods go before their replacements are ready (66 % of the "
        "capacity during every rollout); set maxUnavailable: 0 and maxSurge: 1",
    ),
    "pdb-blocking-autoscaled": Case(
        "pdb",
        both(
            setter("spec.replicas", None, deployment),
            add_hpa(2),
            setter("spec.maxUnavailable", None, lambda d: of_kind(d, "PodDisruptionBudget")),
            setter("spec.minAvailable", 2, lambda d: of_kind(d, "PodDisruptionBudget")),
        ),
        both(
            setter("spec.replicas", None, deployment),
            add_hpa(3),
            setter("spec.maxUnavailable", None, lambda d: of_kind(d, "PodDisruptionBudget")),
            setter("spec.minAvailable", 2, lambda d: of_kind(d, "PodDisruptionBudget")),
        ),
        "PodDisruptionBudget/app: spec.minAvailable: error[pdb]: minAvailable 2 with 2 replicas "
        "(Deployment/app, HorizontalPodAutoscaler/app minReplicas) allows no eviction: every "
        "node drain blocks until someone deletes the pod by hand; use maxUnavailable: 1",
    ),
    "service-port-second-port": Case(
        "service-port",
        setter(
            "spec.ports",
            [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "admin", "port": 9000, "targetPort": 9999},
            ],
            service,
        ),
        # the listener's port is listener-exposed's business, not this rule's
        setter(
            "spec.ports",
            [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "admin", "port": 9000, "targetPort": 8081},
            ],
            service,
        ),
        "Service/app: spec.ports[admin].targetPort: error[service-port]: 9999 is not the port "
        "Gunicorn binds (8080): the Service sends traffic nowhere; use targetPort: http",
        allowed_when_passing=("listener-exposed",),
    ),
    "service-port-after-other-services": Case(
        "service-port",
        both(
            setter("spec.ports", [{"name": "http", "port": 80, "targetPort": 9999}], service),
            services_first(
                other_service("other", {"app": "other"}, [{"port": 80, "targetPort": 9999}]),
                other_service("external", None, [{"port": 80, "targetPort": 9999}]),
            ),
        ),
        # a Service that selects other pods, or none, or in another namespace: not this pod's
        services_first(
            other_service("other", {"app": "other"}, [{"port": 80, "targetPort": 9999}]),
            other_service("external", None, [{"port": 80, "targetPort": 9999}]),
            other_service("elsewhere", {"app": "app"}, [{"port": 80}], namespace="prod"),
        ),
        "Service/app: spec.ports[http].targetPort: error[service-port]: 9999 is not the port "
        "Gunicorn binds (8080): the Service sends traffic nowhere; use targetPort: http",
    ),
    "sidecar-after-others": Case(
        "sidecar",
        both(
            add_container("migrate", "initContainers"),
            add_container("envoy", lifecycle=proxy_prestop(28)),
            add_proxy(),
        ),
        both(
            add_container("migrate", "initContainers"),
            add_container("envoy", lifecycle=proxy_prestop(28)),
            add_proxy("sidecar"),
        ),
        "Deployment/app: spec.template.spec.containers[db-proxy]: warning[sidecar]: it gets "
        "SIGTERM at the same moment as Gunicorn and may exit at once" + SIDECAR_TAIL,
    ),
    "sidecar-sigterm-delay-separate-word": Case(
        "sidecar",
        add_proxy(args=["--max-sigterm-delay", "27s", "project:region:instance"]),
        add_proxy(args=["--max-sigterm-delay", "28", "project:region:instance"]),
        "Deployment/app: spec.template.spec.containers[db-proxy].args: warning[sidecar]: "
        "--max-sigterm-delay 27 s ends before Gunicorn's graceful deadline (28 s): a database "
        "or mesh proxy then takes the app's dependencies away in the middle of its drain "
        "(writes and readiness checks fail for the wrong reason); raise --max-sigterm-delay "
        "to 28s, or make it a native sidecar (move it to initContainers with restartPolicy: "
        "Always, Kubernetes >= 1.29: it stops after the app), or give it a preStop sleep of 28 "
        "s or more",
    ),
    "port-clash-after-init-container": Case(
        "port-clash",
        both(
            add_proxy("init", ports=[{"name": "admin", "containerPort": 8080}]),
            add_container(
                "envoy", "initContainers", restartPolicy="Always", ports=[{"containerPort": 8081}]
            ),
        ),
        both(
            add_proxy("init", ports=[{"name": "admin", "containerPort": 8080}]),
            add_container(
                "envoy", "initContainers", restartPolicy="Always", ports=[{"containerPort": 8082}]
            ),
        ),
        "Deployment/app: spec.template.spec.initContainers[envoy].ports: error[port-clash]: "
        "containerPort 8081 is the probe listener's: the containers of a pod share one "
        "network, so one of the two cannot bind it and probes or the Service reach the wrong "
        "process; give it another port",
    ),
    "zdt-env-unknown-after-others": Case(
        "zdt-env",
        both(set_env("COLOUR", "red"), set_env("ZDT_COLOUR", "blue"), set_env("ZDT_SHAPE", "x")),
        both(set_env("COLOUR", "red"), set_env("SHAPE", "x")),
        f"Deployment/app: {C}.env[ZDT_SHAPE]: warning[zdt-env]: unknown setting, ignored; see "
        "the configuration reference in the README",
        along=(
            f"Deployment/app: {C}.env[ZDT_COLOUR]: warning[zdt-env]: unknown setting, ignored; "
            "see the configuration reference in the README",
        ),
    ),
    "zdt-env-grace-value-from": Case(
        "zdt-env",
        # set, only not visible: no "not set" line as well
        both(
            set_env("ZDT_GRACE_PERIOD_SECONDS", None),
            gunicorn_args("--graceful-timeout 23"),
            lambda docs: container(docs)["env"].append(
                {
                    "name": "ZDT_GRACE_PERIOD_SECONDS",
                    "valueFrom": {"configMapKeyRef": {"name": "zdt", "key": "grace"}},
                }
            ),
        ),
        both(set_env("ZDT_GRACE_PERIOD_SECONDS", "30"), gunicorn_args("--graceful-timeout 23")),
        f"Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: warning[zdt-env]: its value "
        "comes from ConfigMap/zdt, which is not in the input: the check cannot see it and "
        "reads the config without it; pass that object too, or write the value in the manifest",
    ),
    "listener-exposed-unnamed-port": Case(
        "listener-exposed",
        setter("spec.ports", [{"port": 8081}], service),  # targetPort defaults to port
        setter("spec.ports", [{"port": 8080}], service),
        "Service/app: spec.ports[0].targetPort: error[listener-exposed]: "
        + LISTENER_WHY
        + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, not "
        "through a Service)",
    ),
    "listener-exposed-other-services": Case(
        "listener-exposed",
        metrics_service_port("probes"),
        # a Service with an empty selector (no pods) or in another namespace does not reach it
        services_first(
            other_service("none", {}, [{"port": 8081, "targetPort": "probes"}]),
            other_service("elsewhere", {"app": "app"}, [{"port": 8081}], namespace="prod"),
        ),
        "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
        + LISTENER_WHY
        + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, not "
        "through a Service)",
    ),
    "listener-exposed-ingress-default-backend": Case(
        "listener-exposed",
        both(metrics_service_port(8081), ingress_default({"number": 9090})),
        # an Ingress of another namespace routes to another Service/app
        both(metrics_service_port("http"), ingress_default({"number": 9090}, namespace="prod")),
        "Ingress/default: spec.defaultBackend: error[listener-exposed]: Service/app port 9090 "
        + LISTENER_WHY
        + "; point it at the app's port",
        along=(
            "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
            + LISTENER_WHY
            + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, "
            "not through a Service)",
        ),
    ),
    "listener-exposed-ingress-port-name": Case(
        "listener-exposed",
        both(metrics_service_port(8081), ingress_default({"name": "metrics"})),
        both(metrics_service_port("http"), ingress_default({"name": "metrics"})),
        "Ingress/default: spec.defaultBackend: error[listener-exposed]: Service/app port "
        "metrics " + LISTENER_WHY + "; point it at the app's port",
        along=(
            "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
            + LISTENER_WHY
            + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, "
            "not through a Service)",
        ),
    ),
    "listener-exposed-httproute": Case(
        "listener-exposed",
        both(
            metrics_service_port(8081),
            http_route({"name": "app", "port": 80}, {"name": "app", "port": 9090}),
        ),
        both(metrics_service_port("http"), http_route({"name": "app", "port": 9090})),
        "HTTPRoute/app: spec.rules[0].backendRefs[1]: error[listener-exposed]: Service/app "
        "port 9090 " + LISTENER_WHY + "; point it at the app's port",
        along=(
            "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
            + LISTENER_WHY
            + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, "
            "not through a Service)",
        ),
    ),
    "propagation-lb-below-default": Case(
        "propagation",
        set_env("ZDT_DRAIN_SECONDS", "0.25"),
        # the preset's 0.5 s replaces the default 3 s: a 1 s drain covers it
        both(
            set_env("ZDT_DRAIN_SECONDS", "1"),
            gunicorn_args("--keep-alive 0"),
            setter("readinessProbe.periodSeconds", 1),
            setter("readinessProbe.failureThreshold", 1),
        ),
        f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + drain "
        "0.25 < propagation 0.5 (--lb kube-proxy: sync 0.5): new connections may still arrive "
        "after the listeners close; raise ZDT_DRAIN_SECONDS by 1 or add a native preStop sleep",
        lb="kube-proxy:sync=0.5",
    ),
    "prestop-grace-pods-own-prestop": Case(
        "prestop-grace",
        prestop_sleep(31),  # the pod's preStop counts, not ZDT_PRESTOP_SECONDS (still 0)
        prestop_sleep(30),
        f"Deployment/app: {C}.lifecycle.preStop: error[prestop-grace]: preStop 31 > "
        "terminationGracePeriodSeconds 30; the pod is killed before SIGTERM is even sent: "
        "shorten preStop or raise the grace period",
        allowed_when_passing=("grace-period", "zdt-env"),
    ),
    "grace-period-pods-own-grace": Case(
        "grace-period",
        # the pod's grace period counts, not ZDT_GRACE_PERIOD_SECONDS (still 30)
        both(
            setter("terminationGracePeriodSeconds", 25, pod_spec),
            gunicorn_args("--graceful-timeout 23"),
        ),
        gunicorn_args("--graceful-timeout 23"),
        "Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
        "error[grace-period]: terminationGracePeriodSeconds 25 < preStop 0 + drain 5 + "
        "graceful_timeout 23 + margin 2 = 30; raise it to 30 or lower graceful_timeout to 18, "
        "so the kubelet's SIGKILL cannot cut a request",
    ),
    "bind-port-not-declared-among-others": Case(
        "bind",
        setter(
            "ports",
            [{"name": "probes", "containerPort": 8081}, {"name": "metrics", "containerPort": 9000}],
        ),
        nothing,
        f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 8080 but the container "
        "declares 8081, 9000; declare containerPort: 8080 (name: http) or set PORT to the "
        "declared port",
    ),
    "pid1-tini-group-in-a-cluster": Case(
        "pid1",
        setter("command", ["tini", "-sg", "--", "gunicorn", "example_app.wsgi:app"]),
        setter(
            "command", ["tini", "-s", "-p", "SIGTERM", "--", "gunicorn", "example_app.wsgi:app"]
        ),
        f"Deployment/app: {C}.command: error[pid1]: tini -g sends SIGTERM to the whole process "
        "group: every worker stops at once instead of serving through the drain; drop -g, or "
        "run gunicorn directly",
    ),
    "pdb-not-a-number": Case(
        "pdb",
        setter("spec.maxUnavailable", "one", lambda d: of_kind(d, "PodDisruptionBudget")),
        setter("spec.maxUnavailable", "34%", lambda d: of_kind(d, "PodDisruptionBudget")),
        "PodDisruptionBudget/app: spec.maxUnavailable: error[pdb]: maxUnavailable 'one' is not "
        "a number or percentage: the eviction API cannot use this budget; use maxUnavailable: 1",
    ),
    "pdb-min-available-not-a-number": Case(
        "pdb",
        setter(
            "spec",
            {"minAvailable": "2.5", "selector": {"matchLabels": {"app": "app"}}},
            lambda d: of_kind(d, "PodDisruptionBudget"),
        ),
        setter(
            "spec",
            {"minAvailable": 2, "selector": {"matchLabels": {"app": "app"}}},
            lambda d: of_kind(d, "PodDisruptionBudget"),
        ),
        "PodDisruptionBudget/app: spec.minAvailable: error[pdb]: minAvailable '2.5' is not "
        "a number or percentage: the eviction API cannot use this budget; use maxUnavailable: 1",
    ),
    "sidecar-short-deadline": Case(
        "sidecar",
        # no drain, graceful_timeout 1: the deadline is 1 s, and 0 s of preStop is short of it
        both(
            set_env("ZDT_DRAIN_SECONDS", "0"),
            gunicorn_args("--graceful-timeout 1 --timeout 1"),
            add_proxy(),
        ),
        both(
            set_env("ZDT_DRAIN_SECONDS", "0"),
            gunicorn_args("--graceful-timeout 1 --timeout 1"),
            add_proxy(lifecycle=proxy_prestop(1)),
        ),
        "Deployment/app: spec.template.spec.containers[db-proxy]: warning[sidecar]: it gets "
        "SIGTERM at the same moment as Gunicorn and may exit at once: a database or mesh proxy "
        "then takes the app's dependencies away in the middle of its drain (writes and "
        "readiness checks fail for the wrong reason); make it a native sidecar (move it to "
        "initContainers with restartPolicy: Always, Kubernetes >= 1.29: it stops after the "
        "app), or give it a preStop sleep of 1 s or more",
        allowed_when_passing=("propagation",),
    ),
    "listener-exposed-ingress-other-namespace": Case(
        "listener-exposed",
        # the Ingress of another namespace routes to that namespace's Service/app
        both(metrics_service_port(8081), ingress_default({"number": 9090}, namespace="prod")),
        metrics_service_port("http"),
        "Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
        + LISTENER_WHY
        + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, not "
        "through a Service)",
    ),
}


# --- issue 25: the stream read as the cluster reads it ---------------------------------


COMMAND = ["gunicorn", "-c", "example_app/gunicorn.conf.py", "example_app.wsgi:app"]


def pdb(docs: Docs) -> dict[str, Any]:
    return of_kind(docs, "PodDisruptionBudget")


def pod_meta(key: str, values: dict[str, str]) -> Edit:
    """Pod template labels or annotations added (``key``: labels | annotations)."""

    def edit(docs: Docs) -> None:
        meta = deployment(docs)["spec"]["template"].setdefault("metadata", {})
        meta.setdefault(key, {}).update(values)

    return edit


def env_from(name: str, kind: str = "configMapRef") -> Edit:
    return setter("envFrom", [{kind: {"name": name}}])


def config_map(name: str, data: dict[str, str]) -> Edit:
    return add_doc(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    )


def hpa_for(target: str) -> Edit:
    return add_doc(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "app"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": 3,
                "maxReplicas": 10,
            },
        }
    )


def alb_ingress(**notes: str) -> Edit:
    """An AWS ALB Ingress (IP targets) to Service/app port http, annotations on top."""
    annotations = {"alb.ingress.kubernetes.io/target-type": "ip"}
    annotations.update(
        {f"alb.ingress.kubernetes.io/{k.replace('_', '-')}": v for k, v in notes.items()}
    )
    return add_doc(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "app", "annotations": annotations},
            "spec": {
                "ingressClassName": "alb",
                "defaultBackend": {"service": {"name": "app", "port": {"name": "http"}}},
            },
        }
    )


def service_notes(notes: dict[str, str]) -> Edit:
    return setter("metadata.annotations", notes, service)


NLB = "service.beta.kubernetes.io/aws-load-balancer-"
ISTIO_CONFIG = "proxy.istio.io/config"
LINKERD_WAIT = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"


def backend_config(interval: int, threshold: int) -> Edit:
    return both(
        service_notes(
            {
                "cloud.google.com/neg": '{"ingress": true}',
                "cloud.google.com/backend-config": '{"default": "app"}',
            }
        ),
        add_doc(
            {
                "apiVersion": "cloud.google.com/v1",
                "kind": "BackendConfig",
                "metadata": {"name": "app"},
                "spec": {
                    "healthCheck": {"checkIntervalSec": interval, "unhealthyThreshold": threshold}
                },
            }
        ),
    )


def twin_in_namespace(namespace: str | None, labels: dict[str, str], name: str = "app") -> Edit:
    """good.yaml's Deployment again, with other pod labels, in ``namespace`` (None: the
    same one) and named ``name``."""

    def edit(docs: Docs) -> None:
        twin = copy.deepcopy(deployment(docs))
        twin["metadata"]["name"] = name
        if namespace is not None:
            twin["metadata"]["namespace"] = namespace
        twin["spec"]["template"]["metadata"]["labels"] = dict(labels)
        docs.append(twin)

    return edit


def swapped_port_names(docs: Docs) -> None:
    """http is the probe listener's 8081 and probes is Gunicorn's 8080: names swapped."""
    container(docs)["ports"] = [
        {"name": "http", "containerPort": 8081},
        {"name": "probes", "containerPort": 8080},
    ]


CASES.update(
    {
        "startup-drain-pair": Case(
            "startup",
            set_env("ZDT_DRAIN_MAX_SECONDS", "4"),
            set_env("ZDT_DRAIN_MAX_SECONDS", "5"),
            (
                f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[startup]: gunicorn-zdt: "
                "ZDT_DRAIN_SECONDS=5 > ZDT_DRAIN_MAX_SECONDS=4: the minimum drain exceeds the "
                "maximum; raise ZDT_DRAIN_MAX_SECONDS to at least 5 or lower ZDT_DRAIN_SECONDS"
            ),
        ),
        "startup-drain-quiet": Case(
            "startup",
            both(set_env("ZDT_DRAIN_MAX_SECONDS", "8"), set_env("ZDT_DRAIN_QUIET_SECONDS", "9")),
            both(set_env("ZDT_DRAIN_MAX_SECONDS", "8"), set_env("ZDT_DRAIN_QUIET_SECONDS", "8")),
            (
                f"Deployment/app: {C}.env[ZDT_DRAIN_QUIET_SECONDS]: error[startup]: "
                "gunicorn-zdt: ZDT_DRAIN_QUIET_SECONDS=9 > ZDT_DRAIN_MAX_SECONDS=8: the drain "
                "could never end quiet; lower the quiet period below 8 or raise the maximum"
            ),
        ),
        "startup-heartbeat": Case(
            "startup",
            both(
                gunicorn_args("-k sync --threads 1"), set_env("ZDT_HEARTBEAT_TIMEOUT_SECONDS", "10")
            ),
            both(
                gunicorn_args("-k sync --threads 1"), set_env("ZDT_HEARTBEAT_TIMEOUT_SECONDS", "11")
            ),
            (
                f"Deployment/app: {C}.env[ZDT_HEARTBEAT_TIMEOUT_SECONDS]: error[startup]: "
                "gunicorn-zdt: ZDT_HEARTBEAT_TIMEOUT_SECONDS=10 <= timeout/2 = 10: an idle "
                "sync worker reports its heartbeat only every timeout/2 s, so liveness would "
                "fail on an idle pod; raise it above 10 (or unset it: default timeout 20)"
            ),
            allowed_when_passing=("probe-listener",),
        ),
        "startup-budget": Case(
            "startup",
            # the manifest's 40 s fits; ZDT_GRACE_PERIOD_SECONDS (30), which Gunicorn checks, not
            both(
                setter("terminationGracePeriodSeconds", 40, pod_spec),
                gunicorn_args("--graceful-timeout 24"),
            ),
            both(
                setter("terminationGracePeriodSeconds", 40, pod_spec),
                gunicorn_args("--graceful-timeout 23"),
            ),
            (
                f"Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: error[startup]: gunicorn-zdt: "
                "terminationGracePeriodSeconds 30 < preStop 0 + drain 5 + graceful_timeout 24 + "
                "margin 2 = 31; raise it to 31 or lower graceful_timeout to 23, so the kubelet's "
                "SIGKILL cannot cut a request (grace period from ZDT_GRACE_PERIOD_SECONDS, preStop "
                "from ZDT_PRESTOP_SECONDS, drain from ZDT_DRAIN_MAX_SECONDS: the longest drain)"
            ),
            allowed_when_passing=("zdt-env",),
        ),
        "probe-grace-liveness": Case(
            "probe-grace",
            setter("livenessProbe.terminationGracePeriodSeconds", 29),
            setter("livenessProbe.terminationGracePeriodSeconds", 30),
            (
                f"Deployment/app: {C}.livenessProbe.terminationGracePeriodSeconds: "
                "error[probe-grace]: terminationGracePeriodSeconds 29 < preStop 0 + drain 5 + "
                "graceful_timeout 23 + margin 2 = 30: a liveness restart SIGKILLs the requests "
                "still in flight; raise it to 30, or remove it (the pod's 30 s then applies)"
            ),
        ),
        "probe-grace-startup": Case(
            "probe-grace",
            setter("startupProbe.terminationGracePeriodSeconds", 12),
            setter("startupProbe.terminationGracePeriodSeconds", 31),
            (
                f"Deployment/app: {C}.startupProbe.terminationGracePeriodSeconds: "
                "error[probe-grace]: terminationGracePeriodSeconds 12 < preStop 0 + drain 5 + "
                "graceful_timeout 23 + margin 2 = 30: a startup restart SIGKILLs the requests "
                "still in flight; raise it to 30, or remove it (the pod's 30 s then applies)"
            ),
        ),
        "probe-grace-startup-after-a-fitting-liveness": Case(
            "probe-grace",  # each probe's own grace is checked, the first fitting or not
            both(
                setter("livenessProbe.terminationGracePeriodSeconds", 30),
                setter("startupProbe.terminationGracePeriodSeconds", 12),
            ),
            both(
                setter("livenessProbe.terminationGracePeriodSeconds", 30),
                setter("startupProbe.terminationGracePeriodSeconds", 31),
            ),
            (
                f"Deployment/app: {C}.startupProbe.terminationGracePeriodSeconds: "
                "error[probe-grace]: terminationGracePeriodSeconds 12 < preStop 0 + drain 5 + "
                "graceful_timeout 23 + margin 2 = 30: a startup restart SIGKILLs the requests "
                "still in flight; raise it to 30, or remove it (the pod's 30 s then applies)"
            ),
        ),
        "selector-service": Case(
            "selector",
            services_first(
                other_service(
                    "web", {"app": "app", "version": "v2"}, [{"port": 80, "targetPort": "http"}]
                )
            ),
            services_first(
                other_service("web", {"app": "app"}, [{"port": 80, "targetPort": "http"}])
            ),
            (
                "Service/web: spec.selector: error[selector]: selects app=app, version=v2, "
                "which matches no pod template in the input (Deployment/app's pods carry "
                "app=app): the Service has no endpoints once the rollout replaced the pods, a "
                "total outage; select only labels spec.template.metadata.labels has"
            ),
        ),
        "selector-pdb": Case(
            "selector",
            setter("spec.selector.matchLabels", {"app": "app", "tier": "web"}, pdb),
            setter("spec.selector.matchLabels", {"app": "app"}, pdb),
            (
                "PodDisruptionBudget/app: spec.selector: warning[selector]: matchLabels "
                "app=app, tier=web matches no pod template in the input (Deployment/app's pods "
                "carry app=app): the budget protects nothing and a node drain may evict every "
                "pod at once; select only labels spec.template.metadata.labels has"
            ),
        ),
        "selector-hpa": Case(
            "selector",
            both(hpa_for("app-v2"), setter("spec.replicas", None, deployment)),
            both(hpa_for("app"), setter("spec.replicas", None, deployment)),
            (
                "HorizontalPodAutoscaler/app: spec.scaleTargetRef: warning[selector]: "
                "Deployment/app-v2 is not in the input, while Deployment/app is: the "
                "autoscaler scales nothing (or another workload); set scaleTargetRef to kind: "
                "Deployment, name: app"
            ),
        ),
        "selector-hpa-name-of-another-kind": Case(
            "selector",  # a ConfigMap named app-v2 is not the Deployment it names
            both(
                hpa_for("app-v2"),
                config_map("app-v2", {"A": "1"}),
                setter("spec.replicas", None, deployment),
            ),
            both(
                hpa_for("app"),
                config_map("app-v2", {"A": "1"}),
                setter("spec.replicas", None, deployment),
            ),
            (
                "HorizontalPodAutoscaler/app: spec.scaleTargetRef: warning[selector]: "
                "Deployment/app-v2 is not in the input, while Deployment/app is: the "
                "autoscaler scales nothing (or another workload); set scaleTargetRef to kind: "
                "Deployment, name: app"
            ),
        ),
        "not-ready-addresses-after-a-headless-one": Case(
            "not-ready-addresses",
            both(
                setter("spec.publishNotReadyAddresses", True, service),
                services_first(
                    other_service("peers", {"app": "app"}, [{"port": 8080}], clusterIP=None)
                    | {
                        "spec": {
                            "clusterIP": "None",
                            "publishNotReadyAddresses": True,
                            "selector": {"app": "app"},
                            "ports": [{"port": 8080}],
                        }
                    },
                    other_service("admin", {"app": "app"}, [{"port": 8081}])
                    | {
                        "spec": {
                            "publishNotReadyAddresses": True,
                            "selector": {"app": "app"},
                            "ports": [{"port": 9000, "targetPort": "probes"}],
                        }
                    },
                ),
            ),
            services_first(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "peers"},
                    "spec": {
                        "clusterIP": "None",
                        "publishNotReadyAddresses": True,
                        "selector": {"app": "app"},
                        "ports": [{"port": 8080}],
                    },
                },
            ),
            "Service/app: spec.publishNotReadyAddresses: error[not-ready-addresses]: true on a "
            "Service that carries traffic to the app: its endpoints ignore readiness, so the "
            "drain's 503 removes the pod from nothing and new pods get traffic before they can "
            "serve; remove it (keep it only on a headless Service for peer discovery, "
            "clusterIP: None)",
            allowed_when_passing=(),
            along=(),
        ),
        "selector-service-next-to-other-namespaces": Case(
            "selector",
            both(
                services_first(
                    {
                        "apiVersion": "policy/v1",
                        "kind": "PodDisruptionBudget",
                        "metadata": {"name": "x", "namespace": "other"},
                        "spec": {"selector": "?"},
                    },
                    other_service(
                        "web", {"app": "app", "version": "v2"}, [{"port": 80, "targetPort": "http"}]
                    ),
                ),
                twin_in_namespace("other", {"app": "app", "version": "v2"}),
            ),
            services_first(
                other_service("web", {"app": "app"}, [{"port": 80, "targetPort": "http"}]),
            ),
            "Service/web: spec.selector: error[selector]: selects app=app, version=v2, which "
            "matches no pod template in the input (Deployment/app's pods carry app=app): the "
            "Service has no endpoints once the rollout replaced the pods, a total outage; select "
            "only labels spec.template.metadata.labels has",
            allowed_when_passing=(),
        ),
        "not-ready-addresses": Case(
            "not-ready-addresses",
            setter("spec.publishNotReadyAddresses", True, service),
            both(
                setter("spec.publishNotReadyAddresses", True, service),
                setter("spec.clusterIP", "None", service),
            ),
            (
                "Service/app: spec.publishNotReadyAddresses: error[not-ready-addresses]: true "
                "on a Service that carries traffic to the app: its endpoints ignore readiness, "
                "so the drain's 503 removes the pod from nothing and new pods get traffic "
                "before they can serve; remove it (keep it only on a headless Service for peer "
                "discovery, clusterIP: None)"
            ),
        ),
        "route-port": Case(
            "route-port",
            ingress_default({"number": 8080}),
            ingress_default({"number": 80}),
            (
                "Ingress/default: spec.defaultBackend: error[route-port]: Service/app has no "
                "port 8080 (it has 80 (http)): this route sends traffic nowhere; use one of "
                "the Service's ports"
            ),
        ),
        "route-port-http-route": Case(
            "route-port",
            http_route({"name": "app", "port": 8080}),
            http_route({"name": "app", "port": 80}),
            (
                "HTTPRoute/app: spec.rules[0].backendRefs[0]: error[route-port]: Service/app "
                "has no port 8080 (it has 80 (http)): this route sends traffic nowhere; use "
                "one of the Service's ports"
            ),
        ),
        "zdt-env-envfrom-not-in-input": Case(
            "zdt-env",
            both(
                env_from("app-env"),
                set_env("ZDT_GRACE_PERIOD_SECONDS", None),
                gunicorn_args("--graceful-timeout 23"),
            ),
            both(
                env_from("app-env"),
                config_map("app-env", {"ZDT_GRACE_PERIOD_SECONDS": "30"}),
                set_env("ZDT_GRACE_PERIOD_SECONDS", None),
            ),
            (
                f"Deployment/app: {C}.envFrom[ConfigMap/app-env]: warning[zdt-env]: "
                "ConfigMap/app-env is not in the input: the check cannot see the values it "
                "sets (ZDT_*, PORT, GUNICORN_CMD_ARGS) and reads the config without them; pass "
                "it too (e.g. render the whole chart or kustomization into one stream)"
            ),
        ),
        "zdt-env-configmap-value": Case(
            "zdt-env",
            both(
                env_from("app-env"),
                config_map("app-env", {"ZDT_DRAIN_SECONDS": "soon"}),
                set_env("ZDT_DRAIN_SECONDS", None),
            ),
            both(
                env_from("app-env"),
                config_map("app-env", {"ZDT_DRAIN_SECONDS": "5", "ZDT_DRAIN_MAX_SECONDS": "5"}),
                set_env("ZDT_DRAIN_SECONDS", None),
            ),
            (
                f"Deployment/app: {C}.envFrom[ConfigMap/app-env].ZDT_DRAIN_SECONDS: "
                "error[zdt-env]: ZDT_DRAIN_SECONDS='soon' is not a number; set it to a number "
                "of seconds, e.g. ZDT_DRAIN_SECONDS=5"
            ),
        ),
        "grace-period-from-configmap": Case(
            "grace-period",
            both(
                env_from("app-env"),
                config_map("app-env", {"ZDT_DRAIN_SECONDS": "5", "ZDT_DRAIN_MAX_SECONDS": "5"}),
                set_env("ZDT_DRAIN_SECONDS", None),
                gunicorn_args("--graceful-timeout 24"),
            ),
            both(
                env_from("app-env"),
                config_map("app-env", {"ZDT_DRAIN_SECONDS": "5", "ZDT_DRAIN_MAX_SECONDS": "5"}),
                set_env("ZDT_DRAIN_SECONDS", None),
                gunicorn_args("--graceful-timeout 23"),
            ),
            (
                "Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
                "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + drain 5 + "
                "graceful_timeout 24 + margin 2 = 31; raise it to 31 or lower graceful_timeout "
                "to 23, so the kubelet's SIGKILL cannot cut a request"
            ),
        ),
        "sidecar-istio-default-drain": Case(
            "sidecar",
            pod_meta("labels", {"sidecar.istio.io/inject": "true"}),
            both(
                pod_meta("labels", {"sidecar.istio.io/inject": "true"}),
                pod_meta("annotations", {ISTIO_CONFIG: "terminationDrainDuration: 28s"}),
            ),
            (
                "Deployment/app: spec.template.metadata.labels[sidecar.istio.io/inject]: "
                "warning[sidecar]: istio-proxy (injected by istio) carries the app's traffic "
                "for 5 s after SIGTERM (proxy.istio.io/config terminationDrainDuration), less "
                "than Gunicorn's graceful deadline (preStop + drain + graceful_timeout = 28 "
                "s): the app's connections through it end mid-drain; set "
                'terminationDrainDuration: "28s" in the proxy.istio.io/config annotation, or '
                'sidecar.istio.io/nativeSidecar: "true" (a native sidecar stops after the app)'
            ),
        ),
        "sidecar-istio-exit-on-zero": Case(
            "sidecar",
            pod_meta(
                "annotations",
                {
                    "sidecar.istio.io/inject": "true",
                    ISTIO_CONFIG: "proxyMetadata:\n  EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true'\n  MINIMUM_DRAIN_DURATION: 4s\n",
                },
            ),
            pod_meta(
                "annotations",
                {
                    "sidecar.istio.io/inject": "true",
                    ISTIO_CONFIG: "proxyMetadata:\n  EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true'\n  MINIMUM_DRAIN_DURATION: 5s\n",
                },
            ),
            (
                "Deployment/app: spec.template.metadata.annotations[sidecar.istio.io/inject]: "
                "warning[sidecar]: istio-proxy (injected by istio) exits once no connection is "
                "open after proxy.istio.io/config proxyMetadata.MINIMUM_DRAIN_DURATION 4 s, "
                "less than preStop + drain = 5 s: a quiet moment in the drain takes the proxy "
                "away while new connections still arrive; set "
                'proxyMetadata.MINIMUM_DRAIN_DURATION: "5s" in the proxy.istio.io/config '
                'annotation, or sidecar.istio.io/nativeSidecar: "true" (a native sidecar stops '
                "after the app)"
            ),
        ),
        "sidecar-istio-native": Case(
            "sidecar",
            pod_meta(
                "annotations",
                {"sidecar.istio.io/inject": "true", "sidecar.istio.io/nativeSidecar": "false"},
            ),
            pod_meta(
                "annotations",
                {"sidecar.istio.io/inject": "true", "sidecar.istio.io/nativeSidecar": "true"},
            ),
            (
                "Deployment/app: spec.template.metadata.annotations[sidecar.istio.io/inject]: "
                "warning[sidecar]: istio-proxy (injected by istio) carries the app's traffic "
                "for 5 s after SIGTERM (proxy.istio.io/config terminationDrainDuration), less "
                "than Gunicorn's graceful deadline (preStop + drain + graceful_timeout = 28 "
                "s): the app's connections through it end mid-drain; set "
                'terminationDrainDuration: "28s" in the proxy.istio.io/config annotation, or '
                'sidecar.istio.io/nativeSidecar: "true" (a native sidecar stops after the app)'
            ),
        ),
        "sidecar-linkerd": Case(
            "sidecar",
            pod_meta("annotations", {"linkerd.io/inject": "enabled", LINKERD_WAIT: "27"}),
            pod_meta("annotations", {"linkerd.io/inject": "enabled", LINKERD_WAIT: "28"}),
            (
                "Deployment/app: spec.template.metadata.annotations[linkerd.io/inject]: "
                "warning[sidecar]: linkerd-proxy (injected by linkerd) carries the app's "
                "traffic for 27 s after SIGTERM "
                "(config.alpha.linkerd.io/proxy-wait-before-exit-seconds), less than "
                "Gunicorn's graceful deadline (preStop + drain + graceful_timeout = 28 s): the "
                "app's connections through it end mid-drain; set "
                'config.alpha.linkerd.io/proxy-wait-before-exit-seconds: "28", or '
                'config.alpha.linkerd.io/proxy-enable-native-sidecar: "true"'
            ),
        ),
        "propagation-alb-detected": Case(
            "propagation",
            alb_ingress(),
            alb_ingress(healthcheck_interval_seconds="2", unhealthy_threshold_count="2"),
            (
                f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + "
                "drain 5 < propagation 30 (aws-alb (Ingress/app): health check 15 s x 2 + sync "
                "0): new connections may still arrive after the listeners close; add a native "
                "preStop sleep of 25 s (lifecycle.preStop.sleep.seconds, ZDT_PRESTOP_SECONDS "
                "and the grace period with it), or lower the load balancer's health-check "
                "interval x unhealthy threshold"
            ),
        ),
        "lb-deregistration-alb-detected": Case(
            "lb-deregistration",
            alb_ingress(
                healthcheck_interval_seconds="2",
                unhealthy_threshold_count="2",
                target_group_attributes="deregistration_delay.timeout_seconds=27",
            ),
            alb_ingress(
                healthcheck_interval_seconds="2",
                unhealthy_threshold_count="2",
                target_group_attributes="deregistration_delay.timeout_seconds=28",
            ),
            (
                "Deployment/app: Ingress/app: warning[lb-deregistration]: deregistration delay "
                "27 < preStop 0 + drain 5 + graceful_timeout 23 = 28: the load balancer closes "
                "connections of requests the pod is still answering; raise the delay to 28 "
                "(e.g. deregistration_delay.timeout_seconds) or lower graceful_timeout"
            ),
        ),
        "propagation-nlb-detected": Case(
            "propagation",
            service_notes({NLB + "type": "external", NLB + "nlb-target-type": "ip"}),
            service_notes({NLB + "type": "external", NLB + "nlb-target-type": "instance"}),
            (
                f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + "
                "drain 5 < propagation 30 (aws-nlb (Service/app): health check 10 s x 3 + sync "
                "0): new connections may still arrive after the listeners close; add a native "
                "preStop sleep of 25 s (lifecycle.preStop.sleep.seconds, ZDT_PRESTOP_SECONDS "
                "and the grace period with it), or lower the load balancer's health-check "
                "interval x unhealthy threshold"
            ),
        ),
        "propagation-gke-neg-detected": Case(
            "propagation",
            both(backend_config(3, 2), gunicorn_args("--keep-alive 620")),  # GCLB idles 600 s
            both(backend_config(2, 2), gunicorn_args("--keep-alive 620")),
            (
                f"Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + "
                "drain 5 < propagation 6 (gke-neg (Service/app): health check 3 s x 2 + sync "
                "0): new connections may still arrive after the listeners close; add a native "
                "preStop sleep of 1 s (lifecycle.preStop.sleep.seconds, ZDT_PRESTOP_SECONDS "
                "and the grace period with it), or lower the load balancer's health-check "
                "interval x unhealthy threshold"
            ),
        ),
        "propagation-drain-maximum": Case(
            "propagation",
            both(
                set_env("ZDT_DRAIN_MAX_SECONDS", "8"), set_env("ZDT_MIN_PROPAGATION_SECONDS", "9")
            ),
            both(
                set_env("ZDT_DRAIN_MAX_SECONDS", "8"), set_env("ZDT_MIN_PROPAGATION_SECONDS", "8")
            ),
            (
                f"Deployment/app: {C}.env[ZDT_DRAIN_MAX_SECONDS]: error[propagation]: preStop 0 "
                "+ drain 8 < propagation 9: new connections may still arrive after the "
                "listeners close; raise ZDT_DRAIN_MAX_SECONDS or add a preStop sleep"
            ),
        ),
        "bind-from-gunicorn-cmd-args": Case(
            "bind",
            gunicorn_args("--bind 0.0.0.0:9000"),
            gunicorn_args("--bind 0.0.0.0:8080"),
            (
                f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 9000 but the "
                "container declares 8080, 8081; declare containerPort: 9000 (name: http) or "
                "change --bind in GUNICORN_CMD_ARGS to the declared port (it overrides PORT "
                "and the config file)"
            ),
            allowed_when_passing=(),
        ),
        "bind-from-the-command": Case(
            "bind",
            setter("command", [*COMMAND[:3], "-b", "0.0.0.0:9000", COMMAND[3]]),
            setter("command", [*COMMAND[:3], "-b", "0.0.0.0:8080", COMMAND[3]]),
            f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 9000 but the container "
            "declares 8080, 8081; declare containerPort: 9000 (name: http) or change --bind in "
            "the container's command to the declared port",
        ),
        "bind-from-the-args": Case(
            "bind",
            both(
                setter("command", ["gunicorn"]),
                setter("args", [*COMMAND[1:3], "--bind", "0.0.0.0:9000", COMMAND[3]]),
            ),
            both(
                setter("command", ["gunicorn"]),
                setter("args", [*COMMAND[1:3], "--bind", "0.0.0.0:8080", COMMAND[3]]),
            ),
            f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 9000 but the container "
            "declares 8080, 8081; declare containerPort: 9000 (name: http) or change --bind in "
            "the container's command to the declared port",
        ),
        "bind-from-the-command-equals": Case(
            "bind",
            setter("command", [*COMMAND[:3], "--bind=0.0.0.0:9000", COMMAND[3]]),
            setter("command", [*COMMAND[:3], "--bind=0.0.0.0:8080", COMMAND[3]]),
            f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 9000 but the container "
            "declares 8080, 8081; declare containerPort: 9000 (name: http) or change --bind in "
            "the container's command to the declared port",
        ),
        "bind-from-gunicorn-cmd-args-short": Case(
            "bind",
            gunicorn_args("--keep-alive 90 -b 0.0.0.0:9000"),
            gunicorn_args("--keep-alive 90 -b 0.0.0.0:8080"),
            f"Deployment/app: {C}.ports: error[bind]: Gunicorn binds port 9000 but the container "
            "declares 8080, 8081; declare containerPort: 9000 (name: http) or change --bind in "
            "GUNICORN_CMD_ARGS to the declared port (it overrides PORT and the config file)",
        ),
        "listener-exposed-swapped-names": Case(
            "listener-exposed",
            swapped_port_names,
            nothing,
            (
                "Service/app: spec.ports[http].targetPort: error[listener-exposed]: routes "
                "users to the probe listener's port 8081 (ZDT_PROBE_BIND): probes and /metrics "
                "are for the kubelet and Prometheus, and anyone who can reach them can flood "
                "them and get healthy pods restarted; the container's port names are swapped: "
                "http is 8081 (the probe listener's) and probes is 8080 (Gunicorn's); swap "
                "them back (http: 8080, probes: 8081) (scrape /metrics with a PodMonitor or "
                "pod annotations, not through a Service)"
            ),
        ),
    }
)


SOURCE = "manifest.yaml"
ViewKey = tuple[tuple[str, ...], tuple[tuple[str, str], ...], str | None]
#: Gunicorn's view for each (argv, env, config) a case's manifest needs, loaded once.
VIEWS: dict[ViewKey, GunicornView] = {}
_load = app_config.load


def _view_key(argv: list[str], env: Any, config: str | None) -> ViewKey:
    return tuple(argv), tuple(sorted(env.items())), config


def cached_load(argv: list[str], env: Any, config: str | None = None) -> GunicornView:
    """app_config.load, remembered: the config file and the env are the same every time."""
    key = _view_key(argv, env, config)
    if key not in VIEWS:
        VIEWS[key] = _load(argv, env, config)
    return VIEWS[key]


def edited(edit: Edit) -> Docs:
    docs = copy.deepcopy(GOOD)
    edit(docs)
    return docs


@pytest.fixture(autouse=True)
def loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_config, "load", cached_load)


def check(docs: Docs, lb: str | None = None) -> list[str]:
    """The lines ``gunicorn-zdt check --config CONF [--lb LB]`` prints for ``docs``."""
    analysis = cli.analyse_documents(
        [Document(SOURCE, obj) for obj in docs],
        CONF,
        lb=None if lb is None else lb_presets.parse(lb),
    )
    assert analysis.errors == []  # every case's manifest is readable and its config loads
    return [finding.line() for pod in analysis.pods for finding in check_pod(pod)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_breaking_manifest_prints_the_message(name: str) -> None:
    case = CASES[name]
    out = check(edited(case.breaks), case.lb)
    mine = [line for line in out if f"[{case.rule}]:" in line]
    expected = [f"{SOURCE}: {line.format(C=C)}" for line in (*case.along, case.line)]
    assert sorted(mine) == sorted(expected), "\n".join(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_passing_manifest_is_clean(name: str) -> None:
    case = CASES[name]
    out = check(edited(case.passes), case.lb)
    others = [line for line in out if not any(f"[{r}]:" in line for r in case.allowed_when_passing)]
    assert others == []


def test_the_command_prints_the_same_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gunicorn-zdt check on a file prints what check() found, with the file's path."""
    case = CASES["lb-deregistration"]
    docs = edited(case.breaks)
    path = tmp_path / SOURCE
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    assert case.lb is not None
    status = cli.main(["check", "--strict", "--config", CONF, "--lb", case.lb, str(path)])
    printed = capsys.readouterr().out.splitlines()
    expected = [line.replace(SOURCE, str(path), 1) for line in check(docs, case.lb)]
    assert (status, printed) == (1, expected)
    assert f"{path}: {case.line}" in printed


def test_every_rule_has_a_message_case() -> None:
    from gunicorn_zdt.check.rules import RULES

    covered = {case.rule for case in CASES.values()} | {"hooks"}  # test_cli_check covers hooks
    assert {rule.id for rule in RULES} - covered == set()


BUSY = (
    "and then the probe waits behind requests, times out, and the kubelet restarts a pod that "
    "is only busy; point the three probes at the probe listener's port 8081"
)
COOPERATIVE = (
    "is cooperative, but one CPU-bound request or blocking call stalls every greenlet of its "
    "worker (2 workers), and worker_connections caps the rest"
)


WORKERS = [
    ("gthread --workers 3 --threads 2", "3 workers x 2 threads (gthread) can all be busy"),
    (
        "gunicorn.workers.gthread.ThreadWorker",
        "2 workers x 4 threads (gthread) can all be busy",
    ),
    ("sync --threads 1", "2 workers x 1 threads (sync) can all be busy"),
    (
        "gunicorn.workers.sync.SyncWorker --threads 1",
        "2 workers x 1 threads (sync) can all be busy",
    ),
    ("gevent", f"gevent {COOPERATIVE}"),
    ("gunicorn.workers.ggevent.GeventWorker", f"gevent {COOPERATIVE}"),
    ("eventlet", f"eventlet {COOPERATIVE}"),
    ("gunicorn.workers.geventlet.EventletWorker", f"eventlet {COOPERATIVE}"),
]


def liveness_on_app_port(worker: str) -> Edit:
    return both(setter("livenessProbe.httpGet.port", "http"), gunicorn_args(f"-k {worker}"))


@pytest.mark.parametrize(("worker", "busy"), WORKERS)
def test_probe_listener_names_the_worker_model(worker: str, busy: str) -> None:
    """Liveness on the app's port: why its workers can all be busy, for each worker class."""
    docs = edited(liveness_on_app_port(worker))
    mine = [line for line in check(docs) if "[probe-listener]" in line]
    assert mine == [
        f"{SOURCE}: Deployment/app: {C}.livenessProbe.httpGet.port: warning[probe-listener]: "
        f"liveness on the app's port 8080: {busy}, {BUSY}"
    ]


EVERY_BUDGET_RULE = both(
    gunicorn_args("--timeout 40 --keep-alive 10 --graceful-timeout 30"),
    set_env("ZDT_MIN_PROPAGATION_SECONDS", "9"),
    prestop_sleep(31),
    set_env("ZDT_PRESTOP_SECONDS", "31"),
)


def test_each_budget_rule_reports_only_its_own_message() -> None:
    """One manifest that breaks every budget rule: each message once, under its own rule."""
    assert check(edited(EVERY_BUDGET_RULE)) == [
        f"{SOURCE}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
        "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 31 + drain 5 + "
        "graceful_timeout 30 + margin 2 = 68; raise it to 68 (drain and preStop alone leave no "
        "room for graceful_timeout), so the kubelet's SIGKILL cannot cut a request",
        f"{SOURCE}: Deployment/app: {C}.lifecycle.preStop: error[prestop-grace]: preStop 31 > "
        "terminationGracePeriodSeconds 30; the pod is killed before SIGTERM is even sent: "
        "shorten preStop or raise the grace period",
        f"{SOURCE}: Deployment/app: gunicorn.timeout: warning[worker-timeout]: graceful_timeout "
        "30 < timeout 40: a request that runs longer than 30 s when the graceful stop begins is "
        "cut; lower timeout or raise graceful_timeout (and the grace period with it)",
        f"{SOURCE}: Deployment/app: gunicorn.keepalive: warning[keepalive]: keepalive 10 <= "
        "60, the idle timeout of the pooling proxies usually in front (nginx upstream "
        "keepalive_timeout, AWS ALB): Gunicorn closes idle connections first, and a request "
        "the proxy sends on one at that moment fails (502; a POST is lost); raise keepalive "
        "above it, e.g. --keep-alive 75",
    ]


NO_HOOKS = str(MANIFESTS / "no_hooks.conf.py")
WITH_A_PROXY = both(add_proxy(), gunicorn_args("--bind 0.0.0.0:8080 --graceful-timeout 20"))


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (NO_HOOKS, NO_HOOKS),
        ("", "the Gunicorn config (none given)"),  # gunicorn -c "": no config file at all
    ],
)
def test_config_without_the_hooks(config: str, where: str) -> None:
    """No hooks: no drain (the sidecar's deadline is graceful_timeout alone), no listener."""
    docs = edited(WITH_A_PROXY)
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], config)
    assert analysis.errors == []
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod)]
    assert [line for line in lines if "[hooks]" in line or "[sidecar]" in line] == [
        f"{SOURCE}: Deployment/app: gunicorn.config: error[hooks]: {where} does not call "
        "gunicorn_zdt.hooks.install(globals()): on SIGTERM Gunicorn closes its listeners at "
        "once, without a drain; add install(globals()) as its last line, or use -c "
        "python:gunicorn_zdt.conf",
        f"{SOURCE}: Deployment/app: spec.template.spec.containers[db-proxy]: warning[sidecar]: "
        "it gets SIGTERM at the same moment as Gunicorn and may exit at once: a database or mesh "
        "proxy then takes the app's dependencies away in the middle of its drain (writes and "
        "readiness checks fail for the wrong reason); make it a native sidecar (move it to "
        "initContainers with restartPolicy: Always, Kubernetes >= 1.29: it stops after the "
        "app), or give it a preStop sleep of 20 s or more",
    ]
    assert not any("[propagation]" in line or "[zdt-env]" in line for line in lines)


LATE_HOOK = str(MANIFESTS / "late_hook.conf.py")


INSTALL_ARGS = str(MANIFESTS / "install_args.conf.py")
WITHOUT_GRACE_AND_PRESTOP = both(
    set_env("ZDT_GRACE_PERIOD_SECONDS", None), set_env("ZDT_PRESTOP_SECONDS", None)
)


def test_install_arguments_are_named_when_the_values_came_from_them() -> None:
    docs = edited(WITHOUT_GRACE_AND_PRESTOP)
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], INSTALL_ARGS)
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod) if f.rule == "zdt-env"]
    assert lines == [
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: error[zdt-env]: "
        f"install(grace_period_seconds=...) in {INSTALL_ARGS} 40 != terminationGracePeriodSeconds "
        "30: Gunicorn derives graceful_timeout for the wrong grace period; pass "
        'grace_period_seconds=30 to install(), or set ZDT_GRACE_PERIOD_SECONDS: "30" (the env '
        "wins over the argument)",
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_PRESTOP_SECONDS]: error[zdt-env]: "
        f"install(prestop_seconds=...) in {INSTALL_ARGS} 3 != preStop sleep 0 "
        f"({C}.lifecycle.preStop): Gunicorn derives graceful_timeout for the wrong preStop; "
        'pass prestop_seconds=0 to install(), or set ZDT_PRESTOP_SECONDS: "0" (the env wins '
        "over the argument)",
    ]


def test_the_env_is_named_when_it_overrides_the_install_arguments() -> None:
    docs = edited(set_env("ZDT_GRACE_PERIOD_SECONDS", "35"))
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], INSTALL_ARGS)
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod) if f.rule == "zdt-env"]
    assert lines == [
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_GRACE_PERIOD_SECONDS]: error[zdt-env]: "
        "ZDT_GRACE_PERIOD_SECONDS 35 != terminationGracePeriodSeconds 30: Gunicorn derives "
        'graceful_timeout for the wrong grace period; set it to "30"',
    ]


@pytest.mark.parametrize("name", ["zdt-env-invalid", "zdt-env-configmap-value"])
def test_an_unparsable_value_is_reported_once_by_zdt_env(name: str) -> None:
    """Gunicorn refuses it too; the startup rule leaves it to zdt-env (same text, no twice)."""
    out = check(edited(CASES[name].breaks))
    assert [line for line in out if "[startup]" in line] == []
    assert len([line for line in out if "[zdt-env]" in line]) == 1


#: Gunicorn refuses this pod (the drain's minimum above its maximum); the other rules see
#: the pod as install() would have resolved it (env > install() arguments > defaults).
REFUSED_PAIR = both(
    set_env("ZDT_DRAIN_MAX_SECONDS", "4"),
    prestop_sleep(2),
    set_env("ZDT_PRESTOP_SECONDS", "2"),
    gunicorn_args("--timeout 25"),
)


def test_a_refused_config_is_modelled_with_the_pods_own_settings() -> None:
    """Only the refusal and what the pod's real numbers give (graceful_timeout derived as
    install() would: 30 - 2 - 4 - 2 = 22 < timeout 25), never the defaults' port errors."""
    assert check(edited(REFUSED_PAIR)) == [
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[startup]: gunicorn-zdt: "
        "ZDT_DRAIN_SECONDS=5 > ZDT_DRAIN_MAX_SECONDS=4: the minimum drain exceeds the maximum; "
        "raise ZDT_DRAIN_MAX_SECONDS to at least 5 or lower ZDT_DRAIN_SECONDS",
        f"{SOURCE}: Deployment/app: gunicorn.timeout: warning[worker-timeout]: graceful_timeout "
        "22 < timeout 25: a request that runs longer than 22 s when the graceful stop begins is "
        "cut; lower timeout or raise graceful_timeout (and the grace period with it)",
    ]


def test_a_refused_config_keeps_its_install_arguments() -> None:
    """install(grace_period_seconds=40): the model derives 40 - 3 - 4 - 2 = 31 from it."""
    docs = edited(both(WITHOUT_GRACE_AND_PRESTOP, set_env("ZDT_DRAIN_MAX_SECONDS", "4")))
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], INSTALL_ARGS)
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod)]
    assert lines == [
        f"{SOURCE}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
        "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + drain 4 + "
        "graceful_timeout 31 + margin 2 = 37; raise it to 37 or lower graceful_timeout to 24, "
        "so the kubelet's SIGKILL cannot cut a request",
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[startup]: gunicorn-zdt: "
        "ZDT_DRAIN_SECONDS=5 > ZDT_DRAIN_MAX_SECONDS=4: the minimum drain exceeds the maximum; "
        "raise ZDT_DRAIN_MAX_SECONDS to at least 5 or lower ZDT_DRAIN_SECONDS",
    ]


ALL_ARGS = str(MANIFESTS / "install_all_args.conf.py")
ONLY_THE_MAXIMUM_IN_ENV = both(
    WITHOUT_GRACE_AND_PRESTOP,
    set_env("ZDT_DRAIN_SECONDS", None),
    set_env("ZDT_PROBE_BIND", None),
    set_env("ZDT_DRAIN_MAX_SECONDS", "4"),
)


def test_a_refused_config_is_modelled_from_every_install_argument() -> None:
    """install(drain_seconds=6, ...) with ZDT_DRAIN_MAX_SECONDS=4 in the env: Gunicorn refuses;
    the model keeps the arguments' probe listener (no port errors), grace 40 and preStop 3:
    graceful_timeout 40 - 3 - 4 - 2 = 31, too long for the manifest's 30 s."""
    docs = edited(ONLY_THE_MAXIMUM_IN_ENV)
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], ALL_ARGS)
    assert [f.line() for pod in analysis.pods for f in check_pod(pod)] == [
        f"{SOURCE}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
        "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + drain 4 + "
        "graceful_timeout 31 + margin 2 = 37; raise it to 37 or lower graceful_timeout to 24, "
        "so the kubelet's SIGKILL cannot cut a request",
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[startup]: gunicorn-zdt: "
        "ZDT_DRAIN_SECONDS=6 > ZDT_DRAIN_MAX_SECONDS=4: the minimum drain exceeds the maximum; "
        "raise ZDT_DRAIN_MAX_SECONDS to at least 6 or lower ZDT_DRAIN_SECONDS",
    ]


@pytest.mark.parametrize(
    ("grace", "line"),
    [
        # 10 - 3 - 4 - 2 = 1 s: derived and used (only the worker timeout is longer)
        ("10", "warning[worker-timeout]: graceful_timeout 1 < timeout 20"),
        # 9 - 3 - 4 - 2 = 0 s: nothing fits, Gunicorn's own 30 s stays (and does not fit)
        ("9", "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + drain 4 + "
              "graceful_timeout 30"),
    ],
)  # fmt: skip
def test_a_refused_config_derives_graceful_timeout_only_when_it_fits(grace: str, line: str) -> None:
    docs = edited(both(ONLY_THE_MAXIMUM_IN_ENV, set_env("ZDT_GRACE_PERIOD_SECONDS", grace)))
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], ALL_ARGS)
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod) if f.rule != "startup"]
    assert [x.split(": ", 3)[3][: len(line)] for x in lines] == [line]


def test_min_propagation_overrides_the_load_balancer_in_memory() -> None:
    """--min-propagation decides: the load balancer's reasons are not shown."""
    docs = [Document(SOURCE, obj) for obj in edited(nothing)]
    lb = lb_presets.parse("aws-alb")
    analysis = cli.analyse_documents(docs, CONF, min_propagation=6, lb=lb)
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod) if f.rule == "propagation"]
    assert lines == [
        f"{SOURCE}: Deployment/app: {C}.env[ZDT_DRAIN_SECONDS]: error[propagation]: preStop 0 + "
        "drain 5 < propagation 6: new connections may still arrive after the listeners close; "
        "raise ZDT_DRAIN_SECONDS or add a preStop sleep"
    ]


def test_an_autoscaler_of_another_deployment_in_the_input_is_no_near_miss() -> None:
    """HPA/app scales Deployment/app-v2, which is in the stream: not a typo of app."""
    twin = twin_in_namespace(None, {"app": "app-v2"}, name="app-v2")
    lines = check(edited(both(hpa_for("app-v2"), twin)))
    assert [line for line in lines if "[selector]:" in line] == []


@pytest.mark.parametrize(
    ("edit", "config", "plan"),
    [
        (nothing, NO_HOOKS, DrainPlan.no_drain(6.0)),  # no install(): SIGTERM closes at once
        # Gunicorn refuses this pod: the model resolves each setting as install() would
        (
            REFUSED_PAIR,
            CONF,
            DrainPlan(5.0, 2.0, 30.0, 6.0, ("0.0.0.0", 8081), drain_max_seconds=4.0),
        ),
    ],
)
def test_the_modelled_plan_keeps_the_propagation(edit: Edit, config: str, plan: DrainPlan) -> None:
    docs = [Document(SOURCE, obj) for obj in edited(edit)]
    (pod,) = cli.analyse_documents(docs, config, min_propagation=6).pods
    assert model_plan(pod.view, dict(pod.workload.env), 6.0) == plan


def test_hooks_redefined_after_install_are_the_runtime_refusal() -> None:
    """check names the hooks Gunicorn's on_starting refuses to start with, in its words."""
    docs = edited(nothing)
    analysis = cli.analyse_documents([Document(SOURCE, obj) for obj in docs], LATE_HOOK)
    lines = [f.line() for pod in analysis.pods for f in check_pod(pod)]
    assert lines == [
        f"{SOURCE}: Deployment/app: gunicorn.config: error[startup]: gunicorn-zdt: Gunicorn "
        "hook(s) pre_request, on_exit defined after install(globals()) replaced ours, which "
        "turns the drain off; define your hooks before install(globals()) (it chains them) "
        "and call it last"
    ]


def ingress_paths(*ports: tuple[str, dict[str, Any]], namespace: str | None = None) -> Edit:
    """An Ingress with one path per (Service name, port) backend."""
    paths = [
        {"path": f"/{i}", "pathType": "Prefix", "backend": {"service": {"name": n, "port": p}}}
        for i, (n, p) in enumerate(ports)
    ]
    meta: dict[str, Any] = {"name": "paths"}
    if namespace is not None:
        meta["namespace"] = namespace
    spec = {"rules": [{"http": {"paths": paths}}]}
    return add_doc(
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}
    )


ROUTE_NOWHERE = (
    "Ingress/paths: spec.rules[0].http.paths[{i}].backend: error[route-port]: Service/app has "
    "no port 8080 (it has {shown}): this route sends traffic nowhere; use one of the Service's "
    "ports"
)
ROUTE_PORT_ROWS: dict[str, tuple[Edit, list[str]]] = {
    # a backend of another Service, one without a port and a good one: none ends the search
    "each-backend-on-its-own": (
        ingress_paths(("cache", {"number": 1}), ("app", {}), ("app", {"name": "http"}), ("app", {"number": 8080})),
        [ROUTE_NOWHERE.format(i=3, shown="80 (http)")],
    ),
    "every-port-shown-unnamed-by-number": (
        both(
            setter("spec.ports", [{"name": "http", "port": 80, "targetPort": "http"}, {"port": 9090, "targetPort": 8080}], service),
            ingress_paths(("app", {"number": 8080})),
        ),
        [ROUTE_NOWHERE.format(i=0, shown="80 (http), 9090")],
    ),
    "a-service-without-ports": (
        both(setter("spec.ports", [], service), ingress_paths(("app", {"number": 8080}))),
        [ROUTE_NOWHERE.format(i=0, shown="none")],
    ),
    # only a Service routes: a ReplicationController's selector picks the pods too
    "only-a-service-is-a-backend": (
        both(
            add_doc({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "cache"}, "spec": {"selector": {"app": "app"}}}),
            ingress_paths(("cache", {"number": 8080})),
        ),
        [],
    ),
    # a route of another namespace reaches that namespace's Service/app, not this one
    "another-namespace": (ingress_paths(("app", {"number": 8080}), namespace="other"), []),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ROUTE_PORT_ROWS))
def test_route_port_rows(name: str) -> None:
    edit, expected = ROUTE_PORT_ROWS[name]
    out = check(edited(edit))
    assert [line for line in out if "[route-port]:" in line] == [f"{SOURCE}: {e}" for e in expected]


def _load_every_view() -> None:
    """Load, at import, the Gunicorn view of every manifest above (see the module doc)."""
    needs = [(edit, CONF) for case in CASES.values() for edit in (case.breaks, case.passes)]
    needs += [(liveness_on_app_port(worker), CONF) for worker, _ in WORKERS]
    needs += [(EVERY_BUDGET_RULE, CONF), (WITH_A_PROXY, NO_HOOKS), (WITH_A_PROXY, "")]
    needs += [(nothing, LATE_HOOK), (WITHOUT_GRACE_AND_PRESTOP, INSTALL_ARGS), (REFUSED_PAIR, CONF)]
    needs += [(ONLY_THE_MAXIMUM_IN_ENV, ALL_ARGS)]
    needs += [
        (both(ONLY_THE_MAXIMUM_IN_ENV, set_env("ZDT_GRACE_PERIOD_SECONDS", g)), ALL_ARGS)
        for g in ("9", "10")
    ]
    needs += [
        (both(WITHOUT_GRACE_AND_PRESTOP, set_env("ZDT_DRAIN_MAX_SECONDS", "4")), INSTALL_ARGS)
    ]
    needs += [(set_env("ZDT_GRACE_PERIOD_SECONDS", "35"), INSTALL_ARGS)]
    needs += [(edit, CONF) for edit, _ in ROUTE_PORT_ROWS.values()]
    for edit, config in needs:
        for w in workloads([Document(SOURCE, obj) for obj in edited(edit)]):
            if isinstance(w, Workload):
                env = {**w.base_env, **w.env}  # as cli.analyse_documents composes it
                cached_load(gunicorn_argv(w.command, w.args) or [], env, config)


_load_every_view()
