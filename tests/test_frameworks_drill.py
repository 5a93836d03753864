"""The Django and FastAPI examples through a rehearsed rolling update (gunicorn-zdt drill).

Each example's own manifest (example_*/k8s/deployment.yaml) and Gunicorn config, time scale
0.2 (about 25-40 s a rehearsal on 2 cores); plain Gunicorn (the example's
gunicorn_plain.conf.py) fails the same rehearsal, so a pass means something.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks.frameworks import command
from gunicorn_zdt.drill.runner import run_drill
from tests.test_drill_e2e import _options, _pids_gone


def _drill(tmp_path: Path, stack: str, variant: str, service: str) -> dict:
    folder = stack.split("-")[0]
    pytest.importorskip("uvicorn_worker" if "uvicorn" in stack else folder)
    opts = _options(
        tmp_path, service, 1, command(stack, variant), f"example_{folder}/k8s/deployment.yaml"
    )
    env = dict(opts.env)
    env["ZDT_EXAMPLE_WORKER"] = stack.split("-")[1] if stack.endswith(("sync", "asgi")) else ""
    if variant == "plain":
        env["ZDT_PROBE_BIND"] = "off"
    result = run_drill(dataclasses.replace(opts, env=env))
    _pids_gone(tmp_path)
    return result


@pytest.mark.parametrize("service", ["kube-proxy", "health-check"])
@pytest.mark.parametrize("stack", ["django-gthread", "fastapi-uvicorn"])
def test_framework_example_survives_a_rolling_update_without_a_failure(
    tmp_path: Path, stack: str, service: str
) -> None:
    result = _drill(tmp_path, stack, "gunicorn-zdt", service)
    summary = {k: result[k] for k in ("failures", "lost_writes", "unverified_writes")}
    assert summary == {"failures": 0, "lost_writes": 0, "unverified_writes": 0}, result[
        "failure_list"
    ][:10]
    assert result["writes_acknowledged"] > 300
    pinning = result["keepalive_pinning"]
    assert (pinning["pinned_connections"], pinning["pinned_requests"]) == (0, 0), pinning
    for pod in (p for p in result["pods"] if p["stopped_by"] == "rollout"):
        assert (pod["exit_code"], pod["sigkilled"], pod["readiness_failing_status"]) == (
            0,
            False,
            503,
        ), pod
        assert pod["termination_report"].startswith("drain "), pod


@pytest.mark.parametrize("stack", ["django-gthread", "fastapi-uvicorn"])
def test_plain_gunicorn_fails_the_same_framework_rehearsal(tmp_path: Path, stack: str) -> None:
    result = _drill(tmp_path, stack, "plain", "kube-proxy")
    assert not result["passed"] and result["failures"] > 0
    assert [f for f in result["failure_list"] if f["after_deletion_of"] is None] == []
