"""The other containers of the pod: sidecars, mesh proxies, the app's own preStop, ports they share."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from ...core.budget import fmt
from ...k8s.mesh import (
    ISTIO_CONFIG,
    ISTIO_NATIVE,
    LINKERD_NATIVE,
    LINKERD_WAIT,
    InjectedProxy,
)
from ..pod import ERROR, WARNING, Finding, Pod


def rule_prestop_exec_sleep(pod: Pod) -> Iterator[Finding]:
    prestop = pod.workload.prestop
    if prestop.exec_sleep:
        yield pod.finding(
            "prestop-exec-sleep",
            WARNING,
            f"{prestop.field}.exec",
            f"exec sleep {fmt(prestop.seconds)} needs a sleep binary in the image: in "
            "distroless or scratch images the hook fails and SIGTERM comes at once; use "
            f"lifecycle.preStop.sleep.seconds: {fmt(prestop.seconds)} (Kubernetes >= 1.30)",
        )


def _own_drain_seconds(words: Sequence[str]) -> float | None:
    """A proxy's own drain setting: cloud-sql-proxy ``--max-sigterm-delay=30s``."""
    for i, word in enumerate(words):
        if word.startswith("--max-sigterm-delay"):
            raw = (
                word.split("=", 1)[1]
                if "=" in word
                else (words[i + 1] if i + 1 < len(words) else "")
            )
            try:
                return float(raw.removesuffix("s"))
            except ValueError:
                return None
    return None


def rule_sidecar(pod: Pod) -> Iterator[Finding]:
    deadline = pod.budget.graceful_deadline_seconds
    needed = fmt(math.ceil(deadline))
    for n in pod.workload.neighbours:
        if n.role != "container":
            continue  # native sidecars stop after the app; init containers are done
        if n.mesh is not None:
            yield from _mesh_proxy(pod, n.mesh)
            continue
        stays = n.prestop.seconds  # 0 unless it sleeps (PreStop)
        own = _own_drain_seconds(n.words)
        if max(stays, own or 0.0) >= deadline:
            continue
        fix = (
            f"make it a native sidecar (move it to initContainers with restartPolicy: Always, "
            f"Kubernetes >= 1.29: it stops after the app), or give it a preStop sleep of "
            f"{needed} s or more"
        )
        if n.prestop.sleeps:
            fld = f"{n.prestop.field}"
            problem = (
                f"its preStop sleep {fmt(n.prestop.seconds)} s ends before Gunicorn's graceful "
                f"deadline (preStop + drain + graceful_timeout = {fmt(deadline)} s)"
            )
        elif own is not None:
            fld = f"{n.field}.args"
            problem = (
                f"--max-sigterm-delay {fmt(own)} s ends before Gunicorn's graceful deadline "
                f"({fmt(deadline)} s)"
            )
            fix = f"raise --max-sigterm-delay to {needed}s, or {fix}"
        else:
            fld = n.field
            problem = "it gets SIGTERM at the same moment as Gunicorn and may exit at once"
        yield pod.finding(
            "sidecar",
            WARNING,
            fld,
            f"{problem}: a database or mesh proxy then takes the app's dependencies away in "
            f"the middle of its drain (writes and readiness checks fail for the wrong "
            f"reason); {fix}",
        )


def rule_port_clash(pod: Pod) -> Iterator[Finding]:
    taken = {pod.app_port: "the port Gunicorn binds", pod.listener_port: "the probe listener's"}
    for n in pod.workload.neighbours:
        if not n.runs_with_the_app:
            continue
        for port in n.ports:
            if port in taken and port is not None:
                yield pod.finding(
                    "port-clash",
                    ERROR,
                    f"{n.field}.ports",
                    f"containerPort {port} is {taken[port]}: the containers of a pod share "
                    "one network, so one of the two cannot bind it and probes or the Service "
                    "reach the wrong process; give it another port",
                )


def _mesh_proxy(pod: Pod, proxy: InjectedProxy) -> Iterator[Finding]:
    """An injected proxy: its own drain setting against what the app needs of it."""
    b = pod.budget
    if proxy.exits_when_idle:  # stays while connections are open: covers the graceful stop
        needed = b.prestop_seconds + b.drain_seconds
        why = (
            f"exits once no connection is open after {proxy.setting} {fmt(proxy.stays_seconds)}"
            f" s, less than preStop + drain = {fmt(needed)} s: a quiet moment in the drain "
            "takes the proxy away while new connections still arrive"
        )
    else:
        needed = b.graceful_deadline_seconds
        why = (
            f"carries the app's traffic for {fmt(proxy.stays_seconds)} s after SIGTERM "
            f"({proxy.setting}), less than Gunicorn's graceful deadline (preStop + drain + "
            f"graceful_timeout = {fmt(needed)} s): the app's connections through it end "
            "mid-drain"
        )
    if proxy.stays_seconds >= needed:
        return
    n = fmt(math.ceil(needed))
    if proxy.mesh == "istio":
        fix = (
            f'set {proxy.key}: "{n}s" in the {ISTIO_CONFIG} annotation, '
            f'or {ISTIO_NATIVE}: "true" (a native sidecar stops after the app)'
        )
    else:
        fix = f'set {LINKERD_WAIT}: "{n}", or {LINKERD_NATIVE}: "true"'
    yield pod.finding(
        "sidecar",
        WARNING,
        proxy.field,
        f"{proxy.name} (injected by {proxy.mesh}) {why}; {fix}",
    )
