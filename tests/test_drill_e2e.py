"""End-to-end rehearsals: the example app with the shipped k8s settings, real Gunicorn pods.

Time scale 0.2 for every rehearsal here: grace period 30 -> 6 s, ZDT_DRAIN_SECONDS 5 -> 1 s,
readiness period 2 -> 0.4 s, minReadySeconds 5 -> 1 s, propagation 1-3 -> 0.2-0.6 s,
health checks every 2 -> 0.4 s (probe and check timeouts are not scaled). Each rehearsal
takes 15-30 s on 2 cores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gunicorn_zdt.drill.cli import EXAMPLE_COMMAND
from gunicorn_zdt.drill.load import LoadProfile
from gunicorn_zdt.drill.manifest import load_deployment
from gunicorn_zdt.drill.runner import DrillOptions, run_drill
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[1]
SCALE = 0.2
PLAIN_COMMAND = EXAMPLE_COMMAND.replace("gunicorn.conf.py", "gunicorn_plain.conf.py")


POD_PORTS = (21000, 21999)  # --pod-ports: every pod and listener port from here


def _options(
    tmp_path: Path,
    service: str,
    rollouts: int,
    command: str,
    manifest: str = "k8s/deployment.yaml",
) -> DrillOptions:
    # Plain Gunicorn starts no probe listener: its probes go to the app's port.
    listener = {"ZDT_PROBE_BIND": "off"} if command == PLAIN_COMMAND else {}
    return DrillOptions(
        command=command,
        spec=load_deployment(REPO / manifest),
        service=service,
        rollouts=rollouts,
        time_scale=SCALE,
        load=LoadProfile(write_path="/items", slow_path="/work?ms=300"),
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}", **listener},
        cwd=REPO,
        work_dir=tmp_path,
        seed=7,
        port_range=POD_PORTS,
    )


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (zombies are dead, just unreaped)."""
    members = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _shown(failures: list[dict]) -> str:
    """The first failures whole, one per line (pytest's repr cuts a dict short)."""
    return "\n".join(json.dumps(f, sort_keys=True) for f in failures[:10])


def _pids_gone(tmp_path: Path) -> None:
    """Every pod's process group is gone (masters and workers)."""
    logs = list(tmp_path.glob("pod-*.log"))
    assert logs
    for log in logs:
        for pid in map(int, re.findall(r"\[(\d+)\] \[INFO\] Starting gunicorn", log.read_text())):
            wait_until(lambda pid=pid: not _live_members(pid), 5, f"group {pid} gone")


@pytest.mark.parametrize("service", ["kube-proxy", "health-check"])
def test_example_app_survives_two_rolling_updates_without_a_single_failure(
    tmp_path: Path, service: str
) -> None:
    result = run_drill(_options(tmp_path, service, 2, EXAMPLE_COMMAND))
    summary = {k: result[k] for k in ("failures", "lost_writes", "unverified_writes")}
    assert summary == {"failures": 0, "lost_writes": 0, "unverified_writes": 0}, _shown(
        result["failure_list"]
    )
    assert set(result["failures_by_class"].values()) == {0}
    # No keep-alive connection stayed pinned to a draining pod (issue 16): once a pod's
    # readiness answered 503, each request the clients started on a connection to it got
    # Connection: close (the pre_request hook's req.must_close), so none carried a second
    # one. Without must_close nothing fails during the drain, only this count shows it.
    pinning = result["keepalive_pinning"]
    assert pinning["measured_at"] == "client"  # L4: the clients' connections are the pods'
    assert pinning["connections_after_sigterm"] > 0, pinning  # keep-alive reached the drains
    assert (pinning["pinned_connections"], pinning["pinned_requests"]) == (0, 0), pinning
    assert all(p["drain_seen_at"] is not None for p in result["pods"] if p["deleted_at"])
    assert result["passed"]
    assert result["requests"] > 1000
    assert result["writes_acknowledged"] > 300
    rolled = [p for p in result["pods"] if p["stopped_by"] == "rollout"]
    assert len(rolled) == 6  # 2 rollouts x 3 replicas
    for pod in rolled:
        assert (pod["exit_code"], pod["sigkilled"]) == (0, False), pod
        # The drain held the pod for at least ZDT_DRAIN_SECONDS (5 x 0.2) after SIGTERM.
        assert pod["sigterm_to_exit_seconds"] >= 5 * SCALE, pod
        assert pod["readiness_failing_at"] is not None, pod
        # ... and it failed by answering 503 (the flip), not by refusing the connection.
        assert pod["readiness_failing_status"] == 503, pod
    # The shipped manifest probes the listener: every pod ran its own (the manifest's fixed
    # 8081 would have clashed; a restarted container keeps its pod's port), and the kubelet
    # probed it there, not on the app's port.
    assert result["settings"]["probe_listener"] == ["liveness", "readiness", "startup"]
    listeners = {
        log.name: set(re.findall(r"probe listener at http://127\.0\.0\.1:(\d+)/", log.read_text()))
        for log in tmp_path.glob("pod-*.log")
    }
    assert len(listeners) == len(result["pods"])
    assert all(len(found) == 1 for found in listeners.values())
    assert len(set.union(*listeners.values())) == len(result["pods"])
    for pod in result["pods"]:
        (listener,) = listeners[f"{pod['pod']}.log"]
        assert pod["probe_ports"] == dict.fromkeys(
            ("liveness", "readiness", "startup"), int(listener)
        )
        assert int(listener) != pod["port"]
    # Each rolled pod logged its termination report at exit, and the drill shows it.
    for pod in rolled:
        assert pod["termination_report"].startswith("drain "), pod
    assert all(POD_PORTS[0] <= pod["port"] <= POD_PORTS[1] for pod in result["pods"])
    _pids_gone(tmp_path)


def test_plain_gunicorn_drops_requests_and_the_drill_sees_it(tmp_path: Path) -> None:
    """The control: without the hooks the same rehearsal fails, so a pass means something."""
    result = run_drill(_options(tmp_path, "kube-proxy", 1, PLAIN_COMMAND))
    assert not result["passed"]
    assert result["failures_by_class"]["refused"] + result["failures_by_class"]["reset"] > 0
    # Every failure was seen after a pod deletion: the rollout, not the rig, dropped them.
    assert [f for f in result["failure_list"] if f["after_deletion_of"] is None] == []
    _pids_gone(tmp_path)


def _with_streams(opts: DrillOptions, clients: int = 2) -> DrillOptions:
    load = dataclasses.replace(opts.load, stream_path="/events", stream_clients=clients)
    return dataclasses.replace(opts, load=load)


def test_sse_streams_end_with_the_reconnect_event_and_reconnect_to_another_pod(
    tmp_path: Path,
) -> None:
    """Two /events clients through one rolling update: each stream on a deleted pod ends
    cleanly with its final event, and the client's next event comes from another pod."""
    result = run_drill(_with_streams(_options(tmp_path, "kube-proxy", 1, EXAMPLE_COMMAND)))
    assert (result["failures"], result["lost_writes"]) == (0, 0), _shown(result["failure_list"])
    assert set(result["failures_by_class"].values()) == {0}
    assert result["passed"]
    streams = result["streams"]
    assert (streams["clients"], streams["failed"]) == (2, 0), streams["list"]
    rolled = {p["pod"]: p for p in result["pods"] if p["stopped_by"] == "rollout"}
    assert len(rolled) == 3
    on_rolled = [s for s in streams["list"] if s["pod"] in rolled]
    assert on_rolled, streams["list"]
    for s in on_rolled:  # the final event came before the pod exited: nothing was cut
        assert s["outcome"] == "reconnect", s
        assert s["ended_at"] <= rolled[s["pod"]]["exited_at"], (s, rolled[s["pod"]])
    # The kube-proxy model names the pod of every stream; the rest were open at the end.
    assert all(s["pod"] for s in streams["list"]), streams["list"]
    assert {s["outcome"] for s in streams["list"] if s["pod"] not in rolled} == {"open_at_end"}
    assert streams["ended_with_reconnect"] == len(on_rolled)
    assert streams["reconnects_with_event"] >= 1
    # Every reconnect got its next event, from another pod (the old one had left the endpoints).
    assert streams["reconnects"] == streams["reconnects_with_event"]
    assert streams["reconnects_to_another_pod"] == streams["reconnects"]
    assert streams["opened"] == streams["attempts"] == len(streams["list"])
    _pids_gone(tmp_path)


def test_plain_gunicorn_cuts_the_streams_and_the_drill_sees_it(tmp_path: Path) -> None:
    """The control: without the hooks no final event is sent; the kubelet's SIGKILL at the
    end of the grace period cuts each stream on a deleted pod. Streams only, and a grace
    period of 20 s (4 s scaled), to keep the SIGKILL waits short."""
    opts = _with_streams(_options(tmp_path, "kube-proxy", 1, PLAIN_COMMAND))
    opts = dataclasses.replace(
        opts,
        spec=dataclasses.replace(opts.spec, grace_period_seconds=20),
        load=dataclasses.replace(opts.load, clients_per_kind=0, write_path=None, slow_path=None),
    )
    result = run_drill(opts)
    assert not result["passed"]
    streams = result["streams"]
    by_class = result["failures_by_class"]
    assert by_class["stream_cut"] + by_class["stream_reset"] >= 1, streams["list"]
    assert streams["failed"] >= 1 and streams["ended_with_reconnect"] == 0
    killed = {p["pod"] for p in result["pods"] if p["sigkilled"]}
    assert killed, result["pods"]
    assert all(s["pod"] in killed for s in streams["list"] if s["outcome"] != "open_at_end")
    _pids_gone(tmp_path)


def test_ctrl_c_stops_every_pod(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn_zdt.drill", "--manifest", "k8s/deployment.yaml",
         "--time-scale", str(SCALE), "--rollouts", "3", "--out", str(tmp_path),
         "--env", f"DATABASE_URL=sqlite:///{tmp_path / 'shared.db'}"],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        wait_until(lambda: "rolling update 1/3" in proc.stderr.readline(), 60, "first rollout")
        logs = sorted(tmp_path.glob("pod-*.log"))
        assert logs
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _pids_gone(tmp_path)


@pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="needs HAProxy (apt-get install haproxy)"
)
def test_connections_after_the_drain_are_refused_so_a_retrying_proxy_loses_nothing(
    tmp_path: Path,
) -> None:
    """Propagation (6-8 s) outlasts the drain's cap (5 s): the late connections are refused
    before any request was sent, and HAProxy with retries sends them to another pod."""
    opts = dataclasses.replace(
        _options(tmp_path, "haproxy-retry", 1, EXAMPLE_COMMAND),
        propagation_seconds=(6.0, 8.0),
    )
    opts.env["ZDT_DRAIN_MAX_SECONDS"] = f"{5 * SCALE:g}"  # extra env is not time-scaled
    result = run_drill(opts)
    assert (result["failures"], result["lost_writes"]) == (0, 0), _shown(result["failure_list"])
    rolled = [p for p in result["pods"] if p["stopped_by"] == "rollout"]
    # The drains did end with traffic still arriving: the refusals were really exercised.
    hit_cap = [p for p in rolled if "maximum reached while traffic" in p["termination_report"]]
    assert hit_cap, [p["termination_report"] for p in rolled]
    _pids_gone(tmp_path)


@pytest.mark.skipif(
    shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None,
    reason="needs nginx (apt-get install nginx)",
)
def test_behind_a_real_nginx_that_follows_endpoints_by_reload_nothing_fails(
    tmp_path: Path,
) -> None:
    """``--service nginx``: upstream keep-alive (idle 1 s here, below the example's 75 s
    keepalive), the upstream list rewritten and reloaded after each propagation delay, gap
    clients on top of the usual load: zero failures, every write read back."""
    opts = dataclasses.replace(
        _options(tmp_path, "nginx", 1, EXAMPLE_COMMAND),
        load=LoadProfile(write_path="/items", gap_clients=2, gap_seconds=(0.5, 2.5)),
        upstream_idle_seconds=1.0,
    )
    result = run_drill(opts)
    assert (result["failures"], result["lost_writes"]) == (0, 0), _shown(result["failure_list"])
    assert result["writes_acknowledged"] > 0
    assert result["service"]["nginx"] == {"answered_5xx": 0, "retried": 0}
    reloads = (tmp_path / "nginx" / "error.log").read_text().count("signal process started")
    assert reloads >= 6, reloads  # 3 pods added and 3 removed after the first three
    _pids_gone(tmp_path)
