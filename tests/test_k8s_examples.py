"""The shipped k8s/ and Dockerfile: valid for the Kubernetes versions we claim, and clean."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import importlib.util
import json
import re
import shlex
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


#: Each example app users copy: its folder (with its Dockerfile) and its Deployment.
EXAMPLES = {
    "example_app": K8S / "deployment.yaml",
    "example_django": ROOT / "example_django/k8s/deployment.yaml",
    "example_fastapi": ROOT / "example_fastapi/k8s/deployment.yaml",
}


def _dockerfile_lines(example: str) -> list[str]:
    text = (ROOT / example / "Dockerfile").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _container(example: str) -> dict:
    (container,) = _deployment(EXAMPLES[example])["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("example", EXAMPLES)
def test_dockerfile_runs_gunicorn_as_pid1_like_the_deployment(example: str) -> None:
    everything = _dockerfile_lines(example)
    lines = [line for line in everything if not line.startswith("#")]
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1
    assert json.loads(cmd[0][4:]) == _container(example)["command"]
    assert not any(line.startswith("ENTRYPOINT") for line in lines)
    assert not any(word in line for line in lines for word in ("tini", "dumb-init"))
    user = [line for line in lines if line.startswith("USER ")]
    uid = user[-1].split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    pod = _deployment(EXAMPLES[example])["spec"]["template"]["spec"]
    assert uid == str(pod["securityContext"]["runAsUser"])
    assert f"COPY {example} ./{example}" in lines
    assert "XDG_RUNTIME_DIR=/tmp" in " ".join(lines)
    # the image the Deployment runs is the one the Dockerfile's build line tags
    build = [line for line in everything if line.startswith("#   docker build ")]
    assert len(build) == 1, "the Dockerfile's header names its build command"
    words = build[0].removeprefix("#").split()
    assert words[words.index("-f") + 1] == f"{example}/Dockerfile"
    assert words[words.index("-t") + 1] == _container(example)["image"]


def test_example_dockerfiles_differ_only_in_the_app_they_install_and_run() -> None:
    """Docker has no include, so each example's Dockerfile stands alone (users copy one);
    this keeps the shared lines from drifting: a fix to one is a fix to all."""

    def shape(example: str) -> list[str]:
        lines = [line for line in _dockerfile_lines(example) if not line.startswith("#")]
        kept = [line for line in lines if not line.startswith(("RUN pip install ", "CMD "))]
        return [line.replace(example, "<example>") for line in kept]

    first, *others = EXAMPLES
    assert all(shape(other) == shape(first) for other in others), {e: shape(e) for e in EXAMPLES}


def _pip_install(example: str) -> tuple[set[str], set[str]]:
    """(extras of our package, other distributions) the image's ``pip install`` names."""
    (run,) = [line for line in _dockerfile_lines(example) if line.startswith("RUN pip install ")]
    words = shlex.split(run.removeprefix("RUN pip install ").partition("&&")[0])
    extras: set[str] = set()
    others: set[str] = set()
    for word in words:
        if word.startswith(".["):
            extras |= set(word[2:-1].split(","))
        else:
            others.add(_dist(re.split(r"[<>=!~;\[ ]", word)[0]))
    return extras, others


def _dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def _requirements(section: str, key: str) -> set[str]:
    lines = _setup_cfg()[section].get(key, "").splitlines()
    return {_dist(re.split(r"[<>=!~;\[ ]", line.strip())[0]) for line in lines if line.strip()}


def _third_party_imports(example: str) -> set[str]:
    found = set()
    for path in (ROOT / example).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    ours = {"gunicorn_zdt", *EXAMPLES}
    return {m for m in found if m not in sys.stdlib_module_names and m not in ours}


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_example_image_installs_what_its_config_and_code_need(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as text (no Docker engine here): the image's ``pip install`` brings every
    distribution the example imports, its config's worker class, and prometheus_client
    when the config starts the probe listener (else Prometheus gets 501 on /metrics)."""
    container = _container(example)
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    monkeypatch.chdir(ROOT)
    view = app_config.load(container["command"][1:], env)
    assert view.plan is not None, f"{example}: the config does not call install()"
    needed = set(_third_party_imports(example))
    worker = str(view.cfg.worker_class_str)
    if "." in worker:
        needed.add(worker.partition(".")[0])
    elif worker in ("gevent", "eventlet"):
        needed.add(worker)
    if view.plan.probe_bind is not None:
        needed.add("prometheus_client")
    by_module = importlib.metadata.packages_distributions()
    needed_dists = {_dist(by_module[m][0]) for m in needed}
    extras, others = _pip_install(example)
    unknown = extras - set(_setup_cfg()["options.extras_require"])
    assert unknown == set(), f"{example}/Dockerfile names extras setup.cfg lacks: {unknown}"
    installed = _requirements("options", "install_requires") | others
    for extra in extras:
        installed |= _requirements("options.extras_require", extra)
    missing = sorted(needed_dists - installed)
    assert missing == [], (
        f"{example}/Dockerfile installs no {missing}: add the extra that brings it "
        "(setup.cfg [options.extras_require]) or the package to its pip install line"
    )


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
