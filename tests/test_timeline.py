"""``gunicorn-zdt timeline``: the budget's events with the actual numbers, as text and SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gunicorn_zdt import cli
from gunicorn_zdt.check.timeline import render_svg, render_text, slack_text
from gunicorn_zdt.core.budget import Budget

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "tests" / "manifests" / "gunicorn.conf.py")


def test_shipped_deployment_timeline_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert cli.main(["timeline", "k8s/deployment.yaml"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Deployment/example-app (k8s/deployment.yaml): termination timeline "
        "(seconds after the pod is deleted)",
        "       0 s  pod deleted: endpoint removal starts propagating",
        "       0 s  SIGTERM to the Gunicorn master: readiness 503, traffic still served",
        "       5 s  drain minimum: the drain ends once no new connection came for the quiet "
        "period",
        "      15 s  drain maximum: listeners closed even if traffic still arrives",
        "      38 s  graceful_timeout deadline: Gunicorn SIGKILLs remaining workers",
        "      40 s  kubelet SIGKILL (grace period ends)",
        "  endpoint removal must reach every node and load balancer within preStop + drain "
        "= 15 s (stated minimum: 3 s)",
        "  slack 0 s = terminationGracePeriodSeconds 40 - (preStop 0 + drain 15 + "
        "graceful_timeout 23 + margin 2 = 40)",
    ]


def test_prestop_variant_shifts_sigterm(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert cli.main(["timeline", "k8s/variants/prestop-sleep.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "       0 s  preStop sleep 10 s starts" in out
    assert "      10 s  SIGTERM to the Gunicorn master: readiness 503, traffic still served" in out
    assert (
        "      15 s  drain minimum: the drain ends once no new connection came for the quiet period"
        in out
    )
    assert "      50 s  kubelet SIGKILL (grace period ends)" in out


def test_without_manifest_uses_config_and_shell_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZDT_GRACE_PERIOD_SECONDS", "30")
    assert cli.main(["timeline", "--config", CONF]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{CONF}: termination timeline (seconds after the pod is deleted)"
    assert out[-1] == (
        "  slack 0 s = terminationGracePeriodSeconds 30 - (preStop 0 + drain 8 + "
        "graceful_timeout 20 + margin 2 = 30)"
    )


def test_without_manifest_or_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./gunicorn.conf.py: nothing to draw a timeline of
    assert cli.main(["timeline"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "gunicorn-zdt timeline: nothing to show: give a manifest (gunicorn-zdt timeline "
        "k8s/deployment.yaml) or a Gunicorn config (--config gunicorn.conf.py); there is no "
        "./gunicorn.conf.py here"
    ]


@pytest.mark.parametrize(
    ("budget", "text"),
    [
        (
            Budget(drain_seconds=5, graceful_timeout=30, grace_period_seconds=30),
            "slack -7 s = terminationGracePeriodSeconds 30 - (preStop 0 + drain 5 + "
            "graceful_timeout 30 + margin 2 = 37) -> the kubelet SIGKILLs before the graceful "
            "deadline",
        ),
        (
            Budget(drain_seconds=5, graceful_timeout=30),
            "slack unknown: no grace period (pass the manifest, or set ZDT_GRACE_PERIOD_SECONDS); "
            "needs at least preStop 0 + drain 5 + graceful_timeout 30 + margin 2 = 37",
        ),
    ],
)
def test_slack_text(budget: Budget, text: str) -> None:
    assert slack_text(budget) == text
    assert render_text("t", budget).splitlines()[-1] == f"  {text}"


def test_svg_is_well_formed_deterministic_and_shows_the_numbers() -> None:
    b = Budget(
        drain_seconds=5,
        graceful_timeout=23,
        prestop_seconds=10,
        grace_period_seconds=40,
        min_propagation_seconds=15,
    )
    svg = render_svg([("Deployment/x", b)])
    assert svg == render_svg([("Deployment/x", b)])
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for expected in (
        "deleted (0 s)",
        "preStop 10 s ends: SIGTERM (10 s)",
        "listeners close (15 s)",
        "graceful deadline (38 s)",
        "SIGKILL (40 s)",
        "drain 5 s",
        "graceful_timeout 23 s",
    ):
        assert expected in texts
    assert any(t.startswith("slack 0 s") for t in texts)


def test_svg_write_error_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    target = tmp_path / "missing" / "t.svg"
    assert cli.main(["timeline", "k8s/deployment.yaml", "--svg", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"{target}: cannot write the SVG: No such file or directory\n"
    )
