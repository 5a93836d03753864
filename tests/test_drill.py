"""Unit tests of the drill's parts: manifest, Service models, rollout arithmetic, load, report.

No Gunicorn here: backends are tiny socket servers in threads, kubelets are fakes.
The end-to-end rehearsals are in test_drill_e2e.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gunicorn_zdt.core.report import JSON_MARK, parse_line, render_text
from gunicorn_zdt.drill import cli
from gunicorn_zdt.drill.balancer import HealthCheck, Service
from gunicorn_zdt.drill.events import Event, EventLog
from gunicorn_zdt.drill.load import ClientConnection, Load, LoadProfile
from gunicorn_zdt.drill.manifest import (
    DeploymentSpec,
    ManifestError,
    PreStop,
    Probe,
    load_deployment,
    parse_deployment,
)
from gunicorn_zdt.drill.outcomes import NoResponse, Record, classify
from gunicorn_zdt.drill.pinning import Use, keepalive_pinning
from gunicorn_zdt.drill.pods import build_command, free_port
from gunicorn_zdt.drill.report import summarize, svg_report, termination_report, text_report
from gunicorn_zdt.drill.rollout import Deployment
from gunicorn_zdt.drill.runner import DrillOptions, describe_settings
from gunicorn_zdt.drill.streams import SseResponse, StreamRecord, stream_outcome, summarize_streams
from tests.support import TcpServer, wait_until

REPO = Path(__file__).resolve().parents[1]


# -- manifest ---------------------------------------------------------------------------
def _deployment(container: dict, **spec: object) -> list[dict]:
    return [
        {"kind": "Service", "metadata": {"name": "svc"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                **spec,
                "template": {"spec": {"containers": [{"name": "app", **container}]}},
            },
        },
    ]


def test_shipped_deployment_is_read() -> None:
    spec = parse_deployment(list(yaml.safe_load_all((REPO / "k8s/deployment.yaml").read_text())))
    assert spec.replicas == 3
    assert spec.surge_and_unavailable() == (1, 0)
    assert spec.grace_period_seconds == 40
    assert (spec.env["ZDT_DRAIN_SECONDS"], spec.env["ZDT_DRAIN_MAX_SECONDS"]) == ("5", "15")
    assert spec.readiness is not None and spec.readiness.path == "/healthz/ready"
    assert spec.liveness is not None and spec.liveness.path == "/healthz/live"
    assert spec.startup is not None and spec.startup.path == "/healthz/startup"


@pytest.mark.parametrize(
    ("prestop", "expected"),
    [
        ({"sleep": {"seconds": 5}}, "sleep 5 s"),
        ({"exec": {"command": ["sleep", "7"]}}, "sleep 7 s"),
        ({"exec": {"command": ["/bin/sh", "-c", "sleep 3"]}}, "sleep 3 s"),
        ({"exec": {"command": ["/bin/drain", "--now"]}}, "exec /bin/drain --now"),
        ({"httpGet": {"path": "/drain", "port": 8080}}, "httpGet /drain"),
        ({}, "none"),
    ],
)
def test_prestop_forms(prestop: dict, expected: str) -> None:
    spec = parse_deployment(_deployment({"lifecycle": {"preStop": prestop}}))
    assert spec.prestop.describe() == expected


def test_prestop_sleep_override_of_0_removes_the_prestop() -> None:
    assert PreStop.sleeping(0).empty
    assert PreStop.sleeping(5).sleeps and PreStop.sleeping(5).seconds == 5


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (3, 1, 0, (1, 0)),
        (4, "25%", "25%", (1, 1)),
        (3, "25%", "25%", (1, 0)),  # surge rounds up, unavailable down
        (10, "30%", "15%", (3, 1)),
        (3, 0, 0, (0, 1)),  # the controller's fencepost rule
        (3, "0%", "0%", (0, 1)),
    ],
)
def test_surge_and_unavailable_round_like_the_controller(
    replicas: int, surge: int | str, unavailable: int | str, expected: tuple[int, int]
) -> None:
    spec = DeploymentSpec(replicas=replicas, max_surge=surge, max_unavailable=unavailable)
    assert spec.surge_and_unavailable() == expected


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([{"kind": "Service"}], "<manifest>: no Deployment in the manifest"),
        (
            _deployment({}, strategy={"type": "Recreate"}),
            "strategy 'Recreate' cannot be rehearsed",
        ),
        (
            _deployment({"readinessProbe": {"exec": {"command": ["true"]}}}),
            "readinessProbe: only httpGet and tcpSocket probes can be rehearsed",
        ),
        (_deployment({}, strategy={"rollingUpdate": {"maxSurge": -1}}), "maxSurge -1 must not"),
        (_deployment({}, strategy={"rollingUpdate": {"maxSurge": "x%"}}), "maxSurge 'x%' is not"),
    ],
)
def test_manifest_errors_say_what_to_change(documents: list, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_deployment(documents)


def test_time_scale_scales_zdt_seconds_env_only() -> None:
    spec = DeploymentSpec(env={"ZDT_DRAIN_SECONDS": "5", "PORT": "8080", "ZDT_PROBE_PREFIX": "/h"})
    opts = DrillOptions(command="x {port}", spec=spec, time_scale=0.2, env={"EXTRA": "1"})
    assert opts.pod_env() == {
        "ZDT_DRAIN_SECONDS": "1",
        "PORT": "8080",
        "ZDT_PROBE_PREFIX": "/h",
        "EXTRA": "1",
    }


def test_command_template_needs_port() -> None:
    assert build_command("gunicorn app:app -b 127.0.0.1:{port}", 81)[-1] == "127.0.0.1:81"
    with pytest.raises(ValueError, match=r"no \{port\} placeholder"):
        build_command("gunicorn app:app", 81)


# -- failure classes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "reused", "idempotent", "got_bytes", "refused", "expected"),
    [
        (TimeoutError(), True, True, False, False, "timeout"),
        (ConnectionResetError(), True, True, False, False, "keepalive_race"),
        (NoResponse(), True, True, False, False, "keepalive_race"),
        (NoResponse(), True, False, False, False, "closed"),  # POST: nobody retries it
        (ConnectionResetError(), True, True, True, False, "reset"),  # bytes had arrived
        (ConnectionResetError(), False, True, False, True, "refused"),
        (ConnectionRefusedError(), False, True, False, False, "refused"),
        (BrokenPipeError(), False, False, False, False, "reset"),
        (NoResponse(), False, True, False, False, "closed"),
        (ValueError(), False, True, True, False, "other"),
    ],
)
def test_failure_classes(
    exc: BaseException,
    reused: bool,
    idempotent: bool,
    got_bytes: bool,
    refused: bool,
    expected: str,
) -> None:
    got = classify(exc, reused=reused, idempotent=idempotent, got_bytes=got_bytes, refused=refused)
    assert got == expected


# -- tiny backends --------------------------------------------------------------------------
class Backend(TcpServer):
    """An HTTP/1.1 keep-alive server answering ``<name>`` to every request, in a thread."""

    def __init__(
        self, name: str, status: int = 200, drop_second: bool = False, closing: bool = False
    ) -> None:
        self.name = name
        self.status = status
        self.drop_second = drop_second  # close, unanswered, each connection's 2nd request
        self.closing = closing  # answer with Connection: close and close, as a draining pod
        self.requests = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        served = 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                _head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests += 1
                served += 1
                if self.drop_second and served == 2:
                    conn.close()  # the keep-alive race, made deterministic
                    return
                body = self.name.encode()
                close = "Connection: close\r\n" if self.closing else ""
                conn.sendall(
                    f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(body)}\r\n{close}\r\n".encode()
                    + body
                )
                if self.closing:
                    conn.close()
                    return
        except OSError:
            return


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    made: list[Backend] = []
    yield made
    for b in made:
        b.close()


def _service(mode: str, **kw: object) -> Service:
    kw.setdefault("propagation_seconds", (0.0, 0.0))
    service = Service(mode, EventLog(), **kw)  # type: ignore[arg-type]
    service.start()
    return service


def _get(conn: ClientConnection) -> bytes:
    return conn.request("GET", "/").body


def test_l4_new_connections_follow_endpoints_established_stay_pinned(
    backends: list[Backend],
) -> None:
    a, b = Backend("a"), Backend("b")
    backends += [a, b]
    service = _service("kube-proxy")
    try:
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        pinned = ClientConnection(service.port, 5)
        assert _get(pinned) == b"a"
        service.pod_ready("b", b.port)
        service.pod_not_ready("a", a.port)
        wait_until(lambda: service.endpoints == [_ep("b", b.port)], 5, "a removed")
        assert _get(pinned) == b"a"  # established: still the old pod
        fresh = [_get(ClientConnection(service.port, 5)) for _ in range(5)]
        assert fresh == [b"b"] * 5
        pinned.close()
    finally:
        service.stop()


def _ep(name: str, port: int):  # type: ignore[no-untyped-def]
    from gunicorn_zdt.drill.balancer import Endpoint

    return Endpoint(name, port)


def test_l4_refused_by_pod_is_reported_as_refused(backends: list[Backend]) -> None:
    service = _service("kube-proxy")
    gone = Backend("gone")
    gone.close()  # nothing listens on its port any more
    try:
        service.pod_ready("gone", gone.port)
        assert service.wait_endpoints(1, timeout=5)
        conn = ClientConnection(service.port, 5)
        with pytest.raises(ConnectionResetError):
            _get(conn)
        assert service.was_refused(conn.local_port)
    finally:
        service.stop()


def test_l4_endpoint_changes_arrive_after_the_propagation_delay(backends: list[Backend]) -> None:
    a = Backend("a")
    backends.append(a)
    service = _service("kube-proxy", propagation_seconds=(0.3, 0.4))
    try:
        start = time.monotonic()
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        assert 0.3 <= time.monotonic() - start < 1.5
    finally:
        service.stop()


def test_l7_reuses_pooled_connections_and_never_retries(backends: list[Backend]) -> None:
    a = Backend("a", drop_second=True)
    backends.append(a)
    service = _service("l7")
    try:
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        assert _get(ClientConnection(service.port, 5)) == b"a"
        # The pooled connection is reused for another client; the pod drops it unanswered:
        # the proxy answers 502 and does not retry on a new connection.
        assert ClientConnection(service.port, 5).request("GET", "/").status == 502
        assert (len(a.conns), a.requests) == (1, 2)
        assert service.upstream_failures == {"reused keep-alive connection": 1}
        assert _get(ClientConnection(service.port, 5)) == b"a"  # next one: new connection
    finally:
        service.stop()


def test_l7_does_not_reuse_a_connection_idle_past_the_upstream_idle_timeout(
    backends: list[Backend],
) -> None:
    """An app closes idle keep-alive connections (Gunicorn's keepalive); a proxy that reuses
    one as it closes answers 502 with no pod terminating: the pool retires them first."""
    a = Backend("a", drop_second=True)  # a reused connection fails, as in that race
    backends.append(a)
    service = _service("l7", upstream_idle_seconds=0.2)
    try:
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        assert _get(ClientConnection(service.port, 5)) == b"a"
        time.sleep(0.3)  # the condition under test: the pooled connection's idle time
        assert _get(ClientConnection(service.port, 5)) == b"a"
        assert (len(a.conns), service.upstream_failures) == (2, {})
    finally:
        service.stop()


def test_l7_without_endpoints_answers_503() -> None:
    service = _service("l7")
    try:
        assert ClientConnection(service.port, 5).request("GET", "/").status == 503
    finally:
        service.stop()


def test_health_check_adds_after_passes_and_removes_only_after_failures(
    backends: list[Backend],
) -> None:
    a = Backend("a")
    backends.append(a)
    hc = HealthCheck(path="/ready", interval=0.05, timeout=0.5, healthy_threshold=2)
    service = _service("health-check", health_check=hc)
    try:
        service.pod_created("a", a.port)
        service.pod_not_ready("a", a.port)  # endpoint updates are ignored in this mode
        assert service.wait_endpoints(1, timeout=5)
        a.status = 503
        wait_until(lambda: not service.endpoints, 5, "removal after failing checks")
    finally:
        service.stop()


@pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="needs HAProxy (apt-get install haproxy)"
)
def test_haproxy_service_follows_endpoint_changes(backends: list[Backend], tmp_path: Path) -> None:
    from gunicorn_zdt.drill.haproxy import HAProxyService
    from gunicorn_zdt.drill.pods import ProcessGroups

    a, b = Backend("a"), Backend("b")
    backends += [a, b]
    groups = ProcessGroups()
    service = HAProxyService(
        EventLog(), groups=groups, work_dir=tmp_path, propagation_seconds=(0.0, 0.0)
    )
    try:
        service.start()
        assert ClientConnection(service.port, 5).request("GET", "/").status == 503
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        assert _get(ClientConnection(service.port, 5)) == b"a"
        service.pod_ready("b", b.port)
        service.pod_not_ready("a", a.port)
        wait_until(lambda: service.endpoints == [_ep("b", b.port)], 5, "a removed")
        assert [_get(ClientConnection(service.port, 5)) for _ in range(4)] == [b"b"] * 4
    finally:
        service.stop()
        groups.kill_all()


# -- rollout ------------------------------------------------------------------------------
class FakePod:
    def __init__(self, name: str, revision: int) -> None:
        self.name, self.revision = name, revision
        self.ready, self.ready_since, self.terminating = False, None, False


class FakeKubelet:
    """Becomes ready when ``ready_all`` is called; exits at once on deletion."""

    def __init__(self, deployment: Deployment, revision: int, index: int) -> None:
        self.pod = FakePod(f"pod-{index}", revision)
        self.deployment = deployment
        self.failed = None

    def available(self, now: float) -> bool:
        return self.pod.ready and not self.pod.terminating

    def delete(self) -> None:
        self.pod.terminating = True


def test_rollout_keeps_full_capacity_with_max_surge_1_max_unavailable_0() -> None:
    spec = DeploymentSpec(replicas=3, max_surge=1, max_unavailable=0)
    event_log = EventLog()
    seen: list[tuple[int, int]] = []  # (live pods, available pods) after each change

    def make(revision: int, index: int) -> FakeKubelet:
        return FakeKubelet(deployment, revision, index)

    deployment = Deployment(spec, scale=1.0, event_log=event_log, make_kubelet=make)  # type: ignore[arg-type]

    def readier() -> None:  # plays the kubelets: each new pod turns ready in turn
        while not done.is_set():
            with deployment.cond:
                for k in deployment.kubelets:
                    if not k.pod.ready and not k.pod.terminating:
                        k.pod.ready, k.pod.ready_since = True, event_log.now()
                        break
                live = [k for k in deployment.kubelets if not k.pod.terminating]
                seen.append((len(live), sum(k.available(0) for k in live)))
                deployment.cond.notify_all()
            time.sleep(0.01)

    done = threading.Event()
    thread = threading.Thread(target=readier, daemon=True)
    thread.start()
    try:
        deployment.rollout(1)
        seen.clear()
        deployment.rollout(2)
    finally:
        done.set()
        thread.join()
    assert max(live for live, _ in seen) <= 4  # replicas + maxSurge
    assert min(avail for _, avail in seen) >= 3  # replicas - maxUnavailable
    assert [k.pod.revision for k in deployment.kubelets if not k.pod.terminating] == [2, 2, 2]


# -- load and report ---------------------------------------------------------------------------
def test_load_counts_acknowledged_writes(backends: list[Backend]) -> None:
    a = Backend("a", status=201)
    backends.append(a)
    event_log = EventLog()
    load = Load(
        a.port,
        LoadProfile(write_path="/items", clients_per_kind=1, max_requests_per_client=5),
        event_log.now,
    )
    load.start()
    wait_until(lambda: len(load.records) >= 20, 10, "four clients x five requests")
    load.stop()
    assert len(load.acked) == 10
    assert not [r for r in load.records if r.failure]


def test_idempotent_failure_on_reused_connection_is_a_keepalive_race(
    backends: list[Backend],
) -> None:
    a = Backend("a", drop_second=True)  # closes every connection at its 2nd request
    backends.append(a)
    event_log = EventLog()
    load = Load(a.port, LoadProfile(clients_per_kind=1, max_requests_per_client=4), event_log.now)
    load.start()
    wait_until(lambda: len(load.records) >= 8, 10, "two clients x four requests")
    load.stop()
    failed = sorted((r.client, r.failure, r.reused) for r in load.records if r.failure)
    # keep-alive: requests 2 and 4 hit a reused connection that the server closed unanswered;
    # fresh connections never carry a second request.
    assert failed == [("keepalive-get", "keepalive_race", True)] * 2


# -- keep-alive pinning (issue 16) -----------------------------------------------------------
_TERM, _SEEN = {"p": 10.0}, {"p": 10.5}  # pod p: SIGTERM at 10.0, readiness 503 seen at 10.5


def _uses(*rows: tuple[int, float, bool]) -> list[Use]:
    return [Use(conn, "p", t, close) for conn, t, close in rows]


@pytest.mark.parametrize(
    ("uses", "expected"),
    [
        # Correct must_close: the first request started after the 503 was seen is answered
        # Connection: close, the client reconnects elsewhere.
        (_uses((1, 9.0, False), (1, 10.6, True)), (1, 1, 0, 0)),
        # The request in flight at the flip (started before the 503 was seen) may come back
        # keep-alive; the one after it closes: nothing pinned, whatever the timing.
        (_uses((1, 10.1, False), (1, 10.4, False), (1, 10.6, True)), (1, 1, 0, 0)),
        # No must_close: every request after the first one started once the drain was seen.
        (
            _uses((1, 9.0, False), (1, 10.6, False), (1, 10.7, False), (1, 10.8, False)),
            (1, 0, 1, 2),
        ),
        # Started exactly when the 503 was seen: its response had to close the connection.
        (_uses((1, 10.5, False), (1, 10.6, False)), (1, 0, 1, 1)),
        # Per connection, not per pod: two connections with one late request each (and a
        # request of another pod) are not pinned, though the pod served two after the 503.
        ([*_uses((1, 10.6, True), (2, 10.7, True)), Use(3, "q", 10.8, False)], (2, 2, 0, 0)),
        # Unordered input: sorted by start time within its connection.
        (_uses((1, 10.8, False), (1, 10.6, False), (1, 9.0, False)), (1, 0, 1, 1)),
        # Before the SIGTERM: not a connection of the drain at all.
        (_uses((1, 5.0, False), (1, 6.0, False)), (0, 0, 0, 0)),
    ],
)
def test_pinning_counts_requests_after_one_that_started_once_the_drain_was_seen(
    uses: list[Use], expected: tuple[int, int, int, int]
) -> None:
    got = keepalive_pinning(uses, _TERM, _SEEN, measured_at="client")
    keys = ("connections_after_sigterm", "closed_by_pod", "pinned_connections", "pinned_requests")
    assert tuple(got[k] for k in keys) == expected, got
    assert len(got["list"]) == got["pinned_connections"]


def test_pinning_needs_the_drain_to_have_been_seen_and_a_visible_connection() -> None:
    late = _uses((1, 10.6, False), (1, 10.7, False))
    unseen = keepalive_pinning(late, _TERM, {}, measured_at="client")  # readiness never 503
    assert (unseen["connections_after_sigterm"], unseen["pinned_requests"]) == (1, 0)
    hidden = keepalive_pinning(late, _TERM, _SEEN, measured_at=None)  # HAProxy
    assert (hidden["pinned_requests"], hidden["list"]) == (None, [])
    result = summarize(**{**_summary_args(), "pinning": hidden})
    assert result["passed"] and "keep-alive pinning: not measured" in text_report(result)
    row = keepalive_pinning(late, _TERM, _SEEN, measured_at="client")["list"][0]
    assert row == {
        "pod": "p", "connection": 1, "opened_at": 10.6, "drain_seen_at": 10.5,
        "pinned_requests": 1, "first_pinned_at": 10.7, "last_pinned_at": 10.7,
    }  # fmt: skip


def test_load_records_the_pod_and_connection_of_every_keepalive_request(
    backends: list[Backend],
) -> None:
    """Through the L4 model: one connection per keep-alive client while the pod keeps it
    open, a new one after each Connection: close; fresh-connection clients are not kept."""
    a, b = Backend("a"), Backend("b", closing=True)
    backends += [a, b]
    for backend in (a, b):
        service = _service("kube-proxy")
        try:
            service.pod_ready(backend.name, backend.port)
            assert service.wait_endpoints(1, timeout=5)
            profile = LoadProfile(clients_per_kind=1, max_requests_per_client=4)
            load = Load(service.port, profile, EventLog().now, pod_of=service.pod_of)
            load.start()
            wait_until(lambda load=load: len(load.records) >= 8, 10, "two clients x four")
            load.stop()
        finally:
            service.stop()
        assert not [r for r in load.records if r.failure]
        assert len(load.uses) == 4  # the keep-alive client's four requests
        assert {u.pod for u in load.uses} == {backend.name}
        assert [u.server_close for u in load.uses] == [backend.closing] * 4
        assert len({u.connection for u in load.uses}) == (4 if backend.closing else 1)


def test_l7_records_its_upstream_connections_for_the_pinning_count(
    backends: list[Backend],
) -> None:
    a = Backend("a")
    backends.append(a)
    service = _service("l7")
    try:
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        for _ in range(3):  # three clients, one pooled upstream connection
            assert _get(ClientConnection(service.port, 5)) == b"a"
    finally:
        service.stop()
    assert [(u.pod, u.server_close) for u in service.upstream_uses] == [("a", False)] * 3
    assert len({u.connection for u in service.upstream_uses}) == len(a.conns) == 1


def test_a_pinned_connection_fails_the_drill_and_is_listed() -> None:
    pinning = keepalive_pinning(
        _uses((1, 10.6, False), (1, 10.7, False)), _TERM, _SEEN, measured_at="client"
    )
    result = summarize(
        **{
            **_summary_args(),
            "records": [Record(10.6, 0.01, "keepalive-get", "GET", 200, None, False)],
            "duration_seconds": 12.0,
            "pinning": pinning,
        }
    )
    assert (result["failures"], result["passed"]) == (0, False)
    assert result["keepalive_pinning"]["pinned_requests"] == 1
    text = text_report(result)
    assert "drain was visible (readiness 503): 1 connections, 1 requests" in text
    assert "p       connection 1" in text and text.endswith("FAILED")
    clean = dict(pinning, pinned_connections=0, pinned_requests=0, list=[])
    assert summarize(**{**_summary_args(), "pinning": clean})["passed"]


def _summary_args() -> dict:
    return {
        "settings": describe_settings(DrillOptions(command="x {port}", spec=DeploymentSpec())),
        "records": [Record(0.5, 0.01, "fresh-get", "GET", 200, None, False)],
        "acked": 0,
        "lost": [],
        "unverified": [],
        "pods": [],
        "events": [],
        "service_stats": {},
        "duration_seconds": 3.0,
    }


def _result(records: list[Record] | None = None, events: list[Event] | None = None) -> dict:
    records = records or [
        Record(0.5, 0.01, "fresh-get", "GET", 200, None, False),
        Record(2.2, 0.01, "fresh-get", "GET", 0, "refused", False, "refused"),
    ]
    event_log = EventLog()
    return summarize(
        settings=describe_settings(
            DrillOptions(command="x {port}", spec=DeploymentSpec(), time_scale=0.5)
        ),
        records=records,
        acked=0,
        lost=[],
        unverified=[],
        pods=[],
        events=events or [event_log.record("pod-1", "deleted")],
        service_stats={},
        duration_seconds=3.0,
    )


def test_report_classifies_failures_relative_to_deletions() -> None:
    result = _result()
    assert not result["passed"]
    assert result["failures_by_class"]["refused"] == 1
    assert result["failure_list"][0]["after_deletion_of"] == "pod-1"
    text = text_report(result)
    assert "time scale 0.5" in text
    assert text.endswith("FAILED")


def test_a_failure_belongs_to_the_deletion_before_it_was_seen_not_before_it_started() -> None:
    """A connection queued just before a deletion is reset just after it (seen in CI)."""
    queued = Record(1.99, 0.03, "fresh-post", "POST", 0, "reset", False, "reset")
    early = Record(0.5, 0.2, "fresh-get", "GET", 0, "timeout", False, "timeout")
    result = _result([early, queued], [Event(2.0, "pod-1", "deleted")])
    rows = {r["method"]: r for r in result["failure_list"]}
    assert (rows["POST"]["after_deletion_of"], rows["POST"]["seconds_after_deletion"]) == (
        "pod-1",
        0.02,
    )
    assert rows["GET"]["after_deletion_of"] is None
    assert "before any deletion" in text_report(result)


def test_svg_is_well_formed() -> None:
    root = ET.fromstring(svg_report(_result()))
    assert root.tag.endswith("svg")


# -- CLI ----------------------------------------------------------------------------------
def test_add_parser_registers_drill_with_func() -> None:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["drill", "--time-scale", "0.2", "--service", "l7"])
    assert callable(args.func)
    assert args.command == "drill"
    assert args.time_scale == 0.2


def test_cli_overrides_win_over_the_manifest() -> None:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["drill", "--manifest", str(REPO / "k8s/deployment.yaml"), "--replicas", "2",
         "--prestop-sleep", "5", "--max-surge", "50%"]
    )  # fmt: skip
    spec = cli.options_from_args(args).spec
    assert (spec.replicas, spec.prestop.seconds, spec.max_surge) == (2, 5.0, "50%")


def test_cli_command_without_port_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["drill", "--command", "gunicorn app:app", "--quiet", "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    assert "no {port} placeholder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("manifest", "env", "expect"),
    [
        ("k8s/deployment.yaml", {}, ["liveness", "readiness", "startup"]),
        ("k8s/deployment.yaml", {"ZDT_PROBE_BIND": "off"}, None),
        ("k8s/deployment.yaml", {"ZDT_PROBE_BIND": "9000"}, []),
    ],
)
def test_probes_aimed_at_the_listener_port_are_found_by_name(manifest, env, expect) -> None:
    spec = load_deployment(REPO / manifest)
    opts = DrillOptions(command="x {port}", spec=spec, env=env)
    assert describe_settings(opts)["probe_listener"] == expect


_NEVER_STARTED = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(503); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
)


def test_startup_probe_window_keeps_its_real_length_under_a_time_scale(tmp_path: Path) -> None:
    """Booting takes real time: at scale 0.1 a 1 s x 2 startup window still lasts 2 s."""
    from gunicorn_zdt.drill.kubelet import Kubelet
    from gunicorn_zdt.drill.pods import PodProcess, ProcessGroups, free_port

    script = tmp_path / "never_started.py"
    script.write_text(_NEVER_STARTED)
    port = free_port()
    spec = DeploymentSpec(
        startup=Probe("startup", path="/healthz/startup", period_seconds=1, failure_threshold=2),
        grace_period_seconds=5,
    )
    event_log, groups, service = EventLog(), ProcessGroups(), _service("kube-proxy")
    pod = PodProcess("pod-1", 1, port, build_command(f"python3 {script} {{port}}", port), {}, tmp_path,
              tmp_path / "pod-1.log")  # fmt: skip
    kubelet = Kubelet(pod, spec, scale=0.1, groups=groups, event_log=event_log, service=service,
                      changed=lambda: None)  # fmt: skip
    try:
        kubelet.start()
        failed = wait_until(
            lambda: [e for e in event_log.events() if e.kind == "startup-probe-failed"],
            10,
            "the startup probe gives up",
        )
        created = next(e.t for e in event_log.events() if e.kind == "created")
        # 20 probes 0.1 s apart; the unscaled window would have been 2 x 0.1 = 0.2 s.
        assert failed[0].t - created >= 1.8
    finally:
        kubelet.stop_now()
        groups.kill_all()
        service.stop()


def test_pod_ports_come_from_the_chosen_range() -> None:
    ports = {free_port((23000, 23099)) for _ in range(20)}
    assert len(ports) == 20 and all(23000 <= p <= 23099 for p in ports)


@pytest.mark.parametrize("text", ["20000", "2000-1000", "80-90", "20000-70000", "a-b"])
def test_a_bad_pod_port_range_is_refused_in_one_line(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["drill", "--pod-ports", text, "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.endswith(
        f"argument --pod-ports: {text!r} is not a port range; use LOW-HIGH with 1024 <= LOW "
        "< HIGH <= 65535, e.g. 20000-20999"
    )


REPORT = {
    "drain_seconds": 2.5,
    "drain_ended_by": "minimum reached and quiet",
    "arrived_while_draining": 3,
    "last_new_connection_after_sigterm_seconds": 1.25,
    "connections_closed_by_drain": 2,
    "in_flight_at_graceful_stop": 0,
    "requests_cut": 0,
    "cut": [],
    "exit_after_sigterm_seconds": 2.6,
}
PREFIX = "[2026-12-07 01:00:00 +0000] [41] [INFO] "


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (PREFIX + JSON_MARK + json.dumps(REPORT), REPORT),
        (JSON_MARK + json.dumps({**REPORT, "later_field": 1}), {**REPORT, "later_field": 1}),
        (PREFIX + "Booting worker with pid: 42", None),  # no report
        (PREFIX + "gunicorn-zdt: termination report: drain 2.5 s (...)", None),  # the text line
        (PREFIX + JSON_MARK + '{"drain_seconds": 2.5', None),  # malformed: cut short
        (PREFIX + JSON_MARK + "[1, 2]", None),  # not an object
        (PREFIX + JSON_MARK + json.dumps({"drain_seconds": 2.5}), None),  # fields missing
    ],
)
def test_a_log_line_is_parsed_to_the_termination_report_it_holds(
    line: str, parsed: dict[str, object] | None
) -> None:
    assert parse_line(line) == parsed


def test_the_pods_own_termination_report_is_read_from_its_log(tmp_path: Path) -> None:
    log = tmp_path / "pod-1.log"
    assert termination_report(log) is None  # no log yet
    restarted = {**REPORT, "drain_seconds": 4.0}
    log.write_text(
        f"{PREFIX}Booting worker\n"
        f"{PREFIX}{JSON_MARK}{json.dumps(REPORT)}\n"
        f"{PREFIX}{JSON_MARK}{json.dumps(restarted)}\n"  # the pod restarted: the last one
        f"{PREFIX}{JSON_MARK}{{broken\n"
        f"{PREFIX}Shutting down: Master\n"
    )
    report = termination_report(log)
    assert report == restarted
    assert render_text(REPORT) == (
        "drain 2.5 s (minimum reached and quiet); 3 request(s) arrived while draining, last new "
        "connection 1.25 s after SIGTERM; 2 keep-alive connection(s) from before SIGTERM closed "
        "by the drain; 0 in flight when the graceful stop began, 0 cut at graceful_timeout; exit "
        "2.6 s after SIGTERM"
    )


# -- streams (server-sent events) -------------------------------------------------------------
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _chunk(text: bytes) -> bytes:
    return f"{len(text):x}\r\n".encode() + text + b"\r\n"


def _tick(n: int) -> bytes:
    return _chunk(f'id: {n}\nevent: tick\ndata: {{"n": {n}}}\n\n'.encode())


FINAL = _chunk(b"event: reconnect\nretry: 1000\ndata: {}\n\n")
END = b"0\r\n\r\n"


def _fed(*pieces: bytes, bytewise: bool = True) -> SseResponse:
    response = SseResponse()
    for piece in pieces:
        for i in range(len(piece)) if bytewise else [None]:  # one byte at a time: every split
            response.feed(piece[i : i + 1] if i is not None else piece)
    return response


def test_a_stream_that_ends_cleanly_after_the_reconnect_event_is_a_success() -> None:
    response = _fed(SSE_HEAD, _tick(1), _tick(2), FINAL, END)
    assert response.body_complete and response.ended_with_reconnect
    assert [e.type for e in response.events] == ["tick", "tick", "reconnect"]
    assert (response.retry_ms, response.last_event_id) == (1000, "2")
    assert stream_outcome(response, None) == (None, "ended cleanly after the reconnect event")


def test_a_reset_in_the_middle_of_a_stream_is_a_stream_reset() -> None:
    response = _fed(SSE_HEAD, _tick(1), _tick(2)[:5])
    failure, detail = stream_outcome(response, ConnectionResetError(104, "reset by peer"))
    assert failure == "stream_reset"
    assert "after 1 events" in detail


def test_a_clean_end_without_the_reconnect_event_is_a_stream_cut() -> None:
    response = _fed(SSE_HEAD, _tick(1), _tick(2), END)
    assert response.body_complete and not response.ended_with_reconnect
    failure, detail = stream_outcome(response, None)
    assert failure == "stream_cut"
    assert "without the final reconnect event (last event 'tick')" in detail


def test_a_connection_closed_before_the_end_of_the_body_is_a_stream_cut() -> None:
    # The reconnect event arrived, but not the end of the chunked body (a killed worker).
    response = _fed(SSE_HEAD, _tick(1), FINAL)
    response.eof()
    assert not response.body_complete
    assert stream_outcome(response, None)[0] == "stream_cut"


def test_an_idle_stream_past_the_client_timeout_is_a_stream_timeout() -> None:
    response = _fed(SSE_HEAD, _tick(1))
    assert stream_outcome(response, TimeoutError("10 s"))[0] == "stream_timeout"


def test_event_stream_parsing_follows_eventsource() -> None:
    body = (
        b": a comment\r\nevent: reconnect\r\nretry: 250\r\n\r\n"  # no data: not dispatched
        b"data: a\rdata: b\r\rid: 7\ndata:c\n\n"  # CR line ends; "data:c" without the space
        b"event: reconnect\ndata: {}\n\n"
    )
    response = _fed(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", body, bytewise=False
    )
    assert [(e.type, e.data, e.id) for e in response.events] == [
        ("message", "a\nb", ""),
        ("message", "c", "7"),
        ("reconnect", "{}", "7"),
    ]
    assert response.retry_ms == 250
    assert not response.body_complete  # close-delimited: complete only at EOF
    response.eof()
    assert stream_outcome(response, None)[0] is None


class SseBackend(TcpServer):
    """Serves GET /events: ``ticks`` events a second apart (0.05 s here), then, if
    ``before_final`` is set, calls it and sends the final reconnect event and the end;
    without it, ticks until the client goes."""

    def __init__(self, ticks: int, before_final: object = None) -> None:
        self.ticks = ticks
        self.before_final = before_final
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            conn.sendall(SSE_HEAD)
            n = 0
            while self.before_final is None or n < self.ticks:
                n += 1
                conn.sendall(_tick(n))
                time.sleep(0.05)
            self.before_final()  # type: ignore[operator]
            conn.sendall(_chunk(b"event: reconnect\nretry: 100\ndata: {}\n\n") + END)
        except OSError:
            return


@pytest.mark.parametrize("mode", ["kube-proxy", "l7"])
def test_a_stream_client_reconnects_after_the_final_event_and_gets_its_next_event_elsewhere(
    mode: str,
) -> None:
    service = _service(mode)
    b = SseBackend(ticks=0)

    def move_to_b() -> None:  # the endpoint change is known before the final event
        service.pod_not_ready("a", a.port)
        service.pod_ready("b", b.port)
        wait_until(lambda: service.endpoints == [_ep("b", b.port)], 5, "b is the endpoint")

    a = SseBackend(ticks=3, before_final=move_to_b)
    load = None
    try:
        service.pod_ready("a", a.port)
        assert service.wait_endpoints(1, timeout=5)
        event_log = EventLog()
        load = Load(
            service.port,
            LoadProfile(clients_per_kind=0, stream_path="/events", stream_clients=1),
            event_log.now,
            pod_of=service.pod_of,
            time_scale=0.5,  # retry: 100 -> 50 ms
        )
        load.start()
        wait_until(lambda: len(load.streams) >= 1, 10, "the first stream ended")
        time.sleep(0.3)  # the second stream gets a few events from b
        load.stop()
    finally:
        if load is not None:
            load.stop()
        service.stop()
        a.close()
        b.close()
    first, second = load.streams
    pods = ("a", "b") if mode == "kube-proxy" else (None, None)  # l7: chosen per request
    assert (first.pod, first.outcome, first.events, first.reconnect) == (
        pods[0],
        "reconnect",
        4,
        False,
    )
    assert (second.pod, second.outcome, second.reconnect) == (pods[1], "open_at_end", True)
    assert second.previous_pod == pods[0] and second.events >= 2
    assert 0.05 <= second.opened_at - first.ended_at < 1.0  # the scaled retry: hint
    assert [r.failure for r in load.records] == [None, None]
    summary = summarize_streams(load.streams, path="/events", clients=1)
    assert summary is not None
    assert {k: summary[k] for k in ("opened", "ended_with_reconnect", "failed", "reconnects")} == {
        "opened": 2, "ended_with_reconnect": 1, "failed": 0, "reconnects": 1,
    }  # fmt: skip
    assert summary["reconnects_to_another_pod"] == (1 if mode == "kube-proxy" else 0)


def test_a_stream_failure_counts_in_the_report_and_fails_the_drill() -> None:
    cut = StreamRecord("stream-0", 1.0, 2.5, "pod-1", 200, 3, "stream_cut", "no final event",
                       False, None)  # fmt: skip
    records = [
        Record(0.5, 0.01, "fresh-get", "GET", 200, None, False),
        Record(1.0, 1.5, "stream", "GET", 200, "stream_cut", False, "no final event"),
    ]
    result = summarize(
        **{
            **_summary_args(),
            "records": records,
            "streams": summarize_streams([cut], path="/events", clients=1),
        }
    )
    assert not result["passed"]
    assert result["failures_by_class"]["stream_cut"] == 1
    assert result["streams"]["failed"] == 1
    text = text_report(result)
    assert "streams (1 clients on /events" in text and "failed 1" in text
    assert "stream-0  pod-1" in text
    ET.fromstring(svg_report(result))


def test_cli_stream_options() -> None:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    load = cli.options_from_args(parser.parse_args(["drill"])).load
    assert (load.stream_clients, load.stream_path) == (0, None)
    args = parser.parse_args(["drill", "--stream-clients", "2", "--stream-path", "/sse"])
    load = cli.options_from_args(args).load
    assert (load.stream_clients, load.stream_path) == (2, "/sse")


@pytest.mark.parametrize(
    ("write_path", "gap_clients", "expected"),
    [
        (None, 0, []),
        (None, 2, [("gap-get", "get", False)] * 2),  # no write path: GETs only
        ("/items", 3, [("gap-get", "get", False), ("gap-post", "post", False)] * 1
         + [("gap-get", "get", False)]),
    ],
)  # fmt: skip
def test_gap_clients_alternate_get_and_post_on_fresh_connections(
    write_path: str | None, gap_clients: int, expected: list[tuple[str, str, bool]]
) -> None:
    kinds = LoadProfile(write_path=write_path, gap_clients=gap_clients).kinds()
    assert [k for k in kinds if k[0].startswith("gap-")] == expected
