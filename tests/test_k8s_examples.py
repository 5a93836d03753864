"""The shipped k8s/ and Dockerfile: valid for the Kubernetes versions we claim, and clean."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gunicorn_zdt import cli
from gunicorn_zdt.check import app_config
from gunicorn_zdt.check.rules import RULES
from gunicorn_zdt.k8s import gunicorn_argv

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
#: Oldest (native preStop sleep on by default) and newest Kubernetes we claim.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
VARIANTS = ("prestop-sleep", "native-sidecar")
OBJECT_FILES = sorted(
    p for p in [*K8S.glob("*.yaml"), *K8S.glob("variants/*.yaml")] if p.name != "kustomization.yaml"
)
#: The other frameworks' examples (Django, FastAPI): the same shape, their own folders.
EXAMPLE_DIRS = ("example_django/k8s", "example_fastapi/k8s")
EXAMPLE_OBJECT_FILES = sorted(p for d in EXAMPLE_DIRS for p in (ROOT / d).glob("*.yaml"))


def _deployment(path: Path = K8S / "deployment.yaml") -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.skipif(
    importlib.util.find_spec("kubernetes_validate") is None,
    reason="kubernetes-validate is not installed (pip install kubernetes-validate)",
)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_strictly_against_official_schemas(version: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version]
        + [str(p) for p in [*OBJECT_FILES, *EXAMPLE_OBJECT_FILES]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # a kind without a schema is only a WARN with exit 0: require a pass for each object
    passed = [line for line in done.stdout.splitlines() if line.startswith("INFO")]
    assert len(passed) == len(OBJECT_FILES) + len(EXAMPLE_OBJECT_FILES), done.stdout


def test_kustomization_lists_every_object_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = sorted(kustomization["resources"])
    assert listed == sorted(p.name for p in OBJECT_FILES if p.parent == K8S)


@pytest.mark.parametrize(
    "paths",
    [
        ["k8s"],
        *[[f"k8s/variants/{v}.yaml", "k8s/service.yaml", "k8s/pdb.yaml"] for v in VARIANTS],
        *[[d] for d in EXAMPLE_DIRS],
    ],
    ids=["k8s", *VARIANTS, *EXAMPLE_DIRS],
)
def test_shipped_manifests_pass_the_check_strictly(
    paths: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert cli.main(["check", "--strict", *paths]) == 0
    assert capsys.readouterr().out == ""


def test_hpa_variant_passes_the_check_once_the_deployment_leaves_replicas_to_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.chdir(ROOT)
    hpa = (K8S / "variants" / "hpa.yaml").read_text()
    assert (
        yaml.safe_load(hpa)["spec"]["scaleTargetRef"]["name"] == _deployment()["metadata"]["name"]
    )
    # As shipped, deployment.yaml sets replicas: the one finding is the step hpa.yaml names.
    shipped = ["k8s/variants/hpa.yaml", "k8s/deployment.yaml", "k8s/service.yaml", "k8s/pdb.yaml"]
    assert cli.main(["check", "--strict", *shipped]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "warning[replicas]" in out[0] and "remove spec.replicas" in out[0]
    deployment = _deployment()
    del deployment["spec"]["replicas"]
    stream = yaml.safe_dump(deployment) + "---\n" + hpa
    for extra in ("service.yaml", "pdb.yaml"):
        stream += "---\n" + (K8S / extra).read_text()
    assert cli.main(["check", "--strict", "-"], stdin=io.StringIO(stream)) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_output_on_stdin_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    monkeypatch.chdir(ROOT)
    assert cli.main(["check", "--strict", "-"], stdin=io.StringIO(rendered)) == 0
    assert capsys.readouterr().out == ""


def test_shipped_numbers_follow_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    pod = _deployment()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    view = app_config.load(gunicorn_argv(container["command"], None) or [], env)
    assert pod["terminationGracePeriodSeconds"] == 40
    window = (
        env["ZDT_DRAIN_SECONDS"],
        env["ZDT_DRAIN_QUIET_SECONDS"],
        env["ZDT_DRAIN_MAX_SECONDS"],
    )
    assert (window, env["ZDT_GRACE_PERIOD_SECONDS"]) == (("5", "2", "15"), "40")
    assert (view.cfg.graceful_timeout, view.cfg.timeout) == (23, 20)  # 40 - 0 - 15 - 2
    assert view.tcp_binds == [("0.0.0.0", container["ports"][0]["containerPort"])]
    # The probes go to the listener the config starts (not to the busy app port).
    assert view.plan is not None and view.plan.probe_bind == ("0.0.0.0", 8081)
    probes = container["ports"][1]
    assert (probes["name"], probes["containerPort"]) == ("probes", 8081)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[kind]["httpGet"]["port"] == "probes"


def test_dockerfile_runs_gunicorn_as_pid1_like_the_deployment() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "example_app" / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1
    assert (
        json.loads(cmd[0][4:])
        == _deployment()["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    assert not any(line.startswith("ENTRYPOINT") for line in lines)
    assert not any(word in line for line in lines for word in ("tini", "dumb-init"))
    user = [line for line in lines if line.startswith("USER ")]
    uid = user[-1].split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert uid == str(_deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"])


def test_the_example_image_installs_the_metrics_extra_the_hpa_variant_scrapes() -> None:
    """k8s/variants/hpa.yaml scales on /metrics: without prometheus_client it answers 501."""
    installs = [
        line
        for line in (ROOT / "example_app" / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN pip install ")
    ]
    assert len(installs) == 1, installs
    extras = re.search(r'"\.\[([a-z,]+)\]"', installs[0])
    assert extras is not None, installs[0]
    assert {"sqlalchemy", "metrics"} <= set(extras.group(1).split(",")), installs[0]
    assert "gunicorn_zdt_threads_utilisation_ratio" in (K8S / "variants" / "hpa.yaml").read_text()


def test_docs_explain_every_rule() -> None:
    text = (ROOT / "docs" / "k8s.md").read_text()
    missing = [rule.id for rule in RULES if f"`{rule.id}`" not in text]
    assert missing == []


def test_docs_timeline_svg_is_generated_from_the_shipped_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    svg = tmp_path / "timeline.svg"
    assert cli.main(["timeline", "k8s/deployment.yaml", "--svg", str(svg)]) == 0
    capsys.readouterr()
    assert svg.read_text() == (ROOT / "docs" / "timeline.svg").read_text(), (
        "regenerate: gunicorn-zdt timeline k8s/deployment.yaml --svg docs/timeline.svg"
    )


def test_gunicorn_control_socket_has_a_writable_place_in_every_shipped_deployment() -> None:
    """Gunicorn >= 25 creates a control socket at start; on a read-only root FS it needs a
    mounted volume (XDG_RUNTIME_DIR), or it logs "Control server error" on every spawn."""
    for path in [K8S / "deployment.yaml", *sorted(K8S.glob("variants/*.yaml"))]:
        if _deployment(path)["kind"] != "Deployment":
            continue  # variants/hpa.yaml
        pod = _deployment(path)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        assert container["securityContext"]["readOnlyRootFilesystem"], path
        assert any(env.get("XDG_RUNTIME_DIR", "").startswith(m) for m in mounts), path
    dockerfile = (ROOT / "example_app/Dockerfile").read_text()
    assert "XDG_RUNTIME_DIR=/tmp" in dockerfile


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("0.0.0.0", 8081)),
        ({"ZDT_PROBE_BIND": "off"}, None),
        ({"ZDT_PROBE_BIND": "9000"}, ("0.0.0.0", 9000)),
    ],
)
def test_the_example_config_starts_the_probe_listener_unless_the_env_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[str, int] | None
) -> None:
    monkeypatch.chdir(ROOT)
    view = app_config.load(["example_app.wsgi:app"], env, "example_app/gunicorn.conf.py")
    assert view.plan is not None and view.plan.probe_bind == expected
    ready_made = app_config.load(["example_app.wsgi:app"], env, "python:gunicorn_zdt.conf")
    assert ready_made.plan is not None and ready_made.plan.probe_bind == expected
