"""``gunicorn-zdt check``: one manifest per rule that breaks it, exact lines; clean ones pass.

Every fixture in tests/manifests/ is tests/manifests/good.yaml with one thing broken (its
first line says what). The Gunicorn config is tests/manifests/gunicorn.conf.py (the
example's settings with the hooks), loaded by Gunicorn with each container's env.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gunicorn_zdt import cli
from gunicorn_zdt.check.rules import RULES
from tests.test_check_stream import STREAM_CASES

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = Path(__file__).resolve().parent / "manifests"
CONF = str(MANIFESTS / "gunicorn.conf.py")

CASES: dict[str, list[str]] = {
    "bind": [
        (
            "{f}: Deployment/app: gunicorn.bind: error[bind]: Gunicorn binds "
            "127.0.0.1:8080: only the pod itself can connect, not the probes nor the "
            "Service; bind 0.0.0.0:8080"
        ),
    ],
    "check-timeout": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].readinessProbe.timeoutSeconds: "
            "warning[check-timeout]: timeoutSeconds 1 <= ZDT_CHECK_TIMEOUT_SECONDS 1:"
            " the kubelet gives up before a slow check answers and counts a timeout "
            "instead; set timeoutSeconds: 2 or more"
        ),
    ],
    "grace-period": [
        (
            "{f}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
            "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + "
            "drain 5 + graceful_timeout 30 + margin 2 = 37; raise it to 37 or lower "
            "graceful_timeout to 23, so the kubelet's SIGKILL cannot cut a request"
        ),
    ],
    "keepalive": [
        (
            "{f}: Deployment/app: gunicorn.keepalive: warning[keepalive]: keepalive 5 <= 60, "
            "the idle timeout of the pooling proxies usually in front (nginx upstream "
            "keepalive_timeout, AWS ALB): Gunicorn closes idle connections first, and a request "
            "the proxy sends on one at that moment fails (502; a POST is lost); raise keepalive "
            "above it, e.g. --keep-alive 75"
        ),
    ],
    "liveness-target": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].livenessProbe.httpGet.path: "
            "error[liveness-target]: liveness points at readiness (/healthz/ready): "
            "it fails during every drain and whenever a dependency is down, so the "
            "kubelet restarts healthy pods; use /healthz/live"
        ),
    ],
    "max-unavailable-default": [
        (
            "{f}: Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: "
            "error[max-unavailable]: not set (default 25%): maxUnavailable 25% lets 1"
            " of 4 pods go before their replacements are ready (25 % of the capacity "
            "during every rollout); set maxUnavailable: 0 and maxSurge: 1"
        ),
    ],
    "max-unavailable": [
        (
            "{f}: Deployment/app: spec.strategy.rollingUpdate.maxUnavailable: "
            "error[max-unavailable]: maxUnavailable 1 lets 1 of 3 pods go before "
            "their replacements are ready (33 % of the capacity during every "
            "rollout); set maxUnavailable: 0 and maxSurge: 1"
        ),
    ],
    "pdb-blocking": [
        (
            "{f}: PodDisruptionBudget/app: spec.minAvailable: error[pdb]: "
            "minAvailable 3 with 3 replicas (Deployment/app) allows no eviction: "
            "every node drain blocks until someone deletes the pod by hand; use "
            "maxUnavailable: 1"
        ),
    ],
    "pdb-missing": [
        (
            "{f}: Deployment/app: spec.template.metadata.labels: warning[pdb]: no "
            "PodDisruptionBudget selects these pods: a node drain may evict several "
            "at once; add one with maxUnavailable: 1 (k8s/pdb.yaml)"
        ),
    ],
    "pid1-dumb-init": [
        (
            "{f}: Deployment/app: spec.template.spec.containers[web].command: "
            "error[pid1]: dumb-init sends SIGTERM to the whole process group: every "
            "worker stops at once instead of serving through the drain; run gunicorn "
            "directly (exec form) or use dumb-init --single-child"
        ),
    ],
    "pid1-shell": [
        (
            "{f}: Deployment/app: spec.template.spec.containers[web].command: "
            "error[pid1]: shell form (/bin/sh -c): the shell is PID 1 and does not "
            "pass SIGTERM to Gunicorn, which never drains and is SIGKILLed at the "
            'deadline; use exec form, command: ["gunicorn", ...] (or start the script'
            " with exec)"
        ),
    ],
    "prestop-exec-sleep": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].lifecycle.preStop.exec: "
            "warning[prestop-exec-sleep]: exec sleep 5 needs a sleep binary in the "
            "image: in distroless or scratch images the hook fails and SIGTERM comes "
            "at once; use lifecycle.preStop.sleep.seconds: 5 (Kubernetes >= 1.30)"
        ),
    ],
    "prestop-grace": [
        (
            "{f}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
            "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 40 + "
            "drain 5 + graceful_timeout 30 + margin 2 = 77; raise it to 77 (drain and"
            " preStop alone leave no room for graceful_timeout), so the kubelet's "
            "SIGKILL cannot cut a request"
        ),
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].lifecycle.preStop: "
            "error[prestop-grace]: preStop 40 > terminationGracePeriodSeconds 30; the"
            " pod is killed before SIGTERM is even sent: shorten preStop or raise the"
            " grace period"
        ),
    ],
    "probe-path": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].readinessProbe.httpGet.path: "
            "error[probe-path]: /healthz/ready/database runs one check only: the pod stays"
            " in the Service while any other check fails; use /healthz/ready (add "
            "?exclude=NAME to skip a check)"
        ),
    ],
    "probe-port": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].readinessProbe.httpGet.port: "
            "error[probe-port]: port 8000 is not the port Gunicorn binds (8080): the "
            "probe never reaches the app; use http or the probe listener's 8081"
        ),
    ],
    "propagation": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].env[ZDT_DRAIN_SECONDS]: "
            "error[propagation]: preStop 0 + drain 5 < propagation 8: new connections"
            " may still arrive after the listeners close; raise ZDT_DRAIN_SECONDS or "
            "add a preStop sleep"
        ),
    ],
    "readiness-period": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].readinessProbe.periodSeconds: "
            "warning[readiness-period]: periodSeconds 10 x failureThreshold 3 = 30 s "
            "> drain 5: the pod turns NotReady only after the listeners closed, and "
            "load balancers that follow pod readiness keep routing to it; lower them "
            "so that periodSeconds x failureThreshold <= 5, e.g. periodSeconds: 1, "
            "failureThreshold: 3"
        ),
    ],
    "service-port": [
        (
            "{f}: Service/app: spec.ports[http].targetPort: error[service-port]: 8000"
            " is not the port Gunicorn binds (8080): the Service sends traffic "
            "nowhere; use targetPort: http"
        ),
    ],
    "startup-probe": [
        (
            "{f}: Deployment/app: spec.template.spec.containers[web].startupProbe: "
            "warning[startup-probe]: missing while livenessProbe starts after "
            "initialDelaySeconds 0: a start slower than about 30 s (imports, "
            "database, migrations) is killed and restarted in a loop; add "
            "startupProbe: httpGet /healthz/startup on port http, e.g. periodSeconds:"
            " 1, failureThreshold: 30"
        ),
    ],
    "worker-timeout": [
        (
            "{f}: Deployment/app: gunicorn.timeout: warning[worker-timeout]: "
            "graceful_timeout 23 < timeout 30: a request that runs longer than 23 s "
            "when the graceful stop begins is cut; lower timeout or raise "
            "graceful_timeout (and the grace period with it)"
        ),
    ],
    "zdt-env-grace": [
        (
            "{f}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
            "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 0 + "
            "drain 5 + graceful_timeout 33 + margin 2 = 40; raise it to 40 or lower "
            "graceful_timeout to 23, so the kubelet's SIGKILL cannot cut a request"
        ),
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].env[ZDT_GRACE_PERIOD_SECONDS]: "
            "error[zdt-env]: ZDT_GRACE_PERIOD_SECONDS 40 != "
            "terminationGracePeriodSeconds 30: Gunicorn derives graceful_timeout for "
            'the wrong grace period; set it to "30"'
        ),
    ],
    "zdt-env-missing": [
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].env[ZDT_GRACE_PERIOD_SECONDS]: "
            "warning[zdt-env]: not set: Gunicorn can neither derive graceful_timeout "
            "from the grace period nor refuse a budget that does not fit; set it to "
            '"30" (= terminationGracePeriodSeconds)'
        ),
    ],
    "zdt-env-prestop": [
        (
            "{f}: Deployment/app: spec.template.spec.terminationGracePeriodSeconds: "
            "error[grace-period]: terminationGracePeriodSeconds 30 < preStop 5 + "
            "drain 5 + graceful_timeout 23 + margin 2 = 35; raise it to 35 or lower "
            "graceful_timeout to 18, so the kubelet's SIGKILL cannot cut a request"
        ),
        (
            "{f}: Deployment/app: "
            "spec.template.spec.containers[web].env[ZDT_PRESTOP_SECONDS]: "
            "error[zdt-env]: ZDT_PRESTOP_SECONDS 0 != preStop sleep 5 "
            "(spec.template.spec.containers[web].lifecycle.preStop): Gunicorn derives"
            ' graceful_timeout for the wrong preStop; set it to "5"'
        ),
    ],
    "zdt-env-unknown": [
        (
            "{f}: Deployment/app: spec.template.spec.containers[web].env[ZDT_DRAIN_SECOND]: "
            "warning[zdt-env]: unknown setting, ignored; did you mean ZDT_DRAIN_SECONDS?"
        ),
    ],
}


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], **kw: object
) -> tuple[int, list[str], list[str]]:
    code = cli.main(argv, **kw)  # type: ignore[arg-type]
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_manifest_gives_exactly_its_findings(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(MANIFESTS / f"{name}.yaml")
    code, out, _ = run(["check", "--config", CONF, path], capsys)
    assert out == [line.replace("{f}", path) for line in CASES[name]]
    has_error = any("error[" in line for line in out)
    assert code == (1 if has_error else 0)
    strict, _, _ = run(["check", "--strict", "--config", CONF, path], capsys)
    assert strict == 1


def test_every_rule_has_a_breaking_manifest() -> None:
    covered = {
        rule.id
        for rule in RULES
        if any(
            f"[{rule.id}]:" in line
            for lines in [*CASES.values(), *POD_CASES.values(), *STREAM_CASES.values()]
            for line in lines
        )
    }
    covered.add("hooks")  # test_config_without_hooks_is_an_error
    covered.add("lb-deregistration")  # test_lb_deregistration_delay_boundary
    assert covered == {rule.id for rule in RULES}


def test_good_manifest_is_clean_even_strict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["check", "--strict", "--config", CONF, str(MANIFESTS / "good.yaml")], capsys
    )
    assert (code, out) == (0, [])
    assert err == ["gunicorn-zdt check: 0 error(s), 0 warning(s) in 1 workload(s)"]


def test_a_wrapper_script_hides_the_config_until_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["command"] = ["./entrypoint.sh"]
    path = tmp_path / "wrapped.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    code, out, err = run(["check", str(path)], capsys)
    assert (code, out) == (2, [])
    assert err[0] == (
        f"{path}: Deployment/app: the container's command (./entrypoint.sh) does not start "
        "gunicorn itself (a wrapper script?), so the check cannot see which Gunicorn config the "
        "pod runs; pass it with --config (e.g. --config gunicorn.conf.py), and make the script "
        "end with exec gunicorn ..."
    )
    # With the config named, the pod is checked; only the PID 1 doubt remains.
    code, out, _ = run(["check", "--config", CONF, str(path)], capsys)
    assert code == 0
    assert [line.split(": ")[3] for line in out] == ["warning[pid1]"]


def test_config_without_hooks_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    conf = str(MANIFESTS / "no_hooks.conf.py")
    path = str(MANIFESTS / "good.yaml")
    code, out, _ = run(["check", "--config", conf, path], capsys)
    assert code == 1
    assert out[0] == (
        f"{path}: Deployment/app: gunicorn.config: error[hooks]: {conf} does not call "
        "gunicorn_zdt.hooks.install(globals()): on SIGTERM Gunicorn closes its listeners at "
        "once, without a drain; add install(globals()) as its last line, or use "
        "-c python:gunicorn_zdt.conf"
    )
    # without the hooks there is no probe listener either: the three probes on it miss
    assert [line.split(": ")[3] for line in out[1:]] == ["error[probe-port]"] * 3


def test_config_from_the_container_command_is_used(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the command says -c example_app/gunicorn.conf.py
    code, out, _ = run(["check", "--strict", str(MANIFESTS / "good.yaml")], capsys)
    assert (code, out) == (0, [])


def _edited(tmp_path: Path, edit) -> str:  # type: ignore[no-untyped-def]
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    edit(docs[0]["spec"]["template"]["spec"]["containers"][0])
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_gunicorn_priority_cli_beats_cmd_args_beats_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(c: dict) -> None:
        c["command"] += ["--graceful-timeout", "23"]
        c["env"].append(
            {"name": "GUNICORN_CMD_ARGS", "value": "--graceful-timeout 30 --timeout 25"}
        )

    path = _edited(tmp_path, edit)
    code, out, _ = run(["check", "--config", CONF, path], capsys)
    # 23 from the command line wins over GUNICORN_CMD_ARGS; its --timeout 25 beats the file's 20
    assert code == 0
    assert len(out) == 1
    assert out[0].startswith(
        f"{path}: Deployment/app: gunicorn.timeout: warning[worker-timeout]: "
        "graceful_timeout 23 < timeout 25: "
    )


def test_environment_is_restored_and_ignored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the shell's ZDT_* must not leak into the pod's view, nor stay changed afterwards
    monkeypatch.setenv("ZDT_DRAIN_SECONDS", "1")
    before = dict(os.environ)
    code, out, _ = run(
        ["check", "--strict", "--config", CONF, str(MANIFESTS / "good.yaml")], capsys
    )
    assert (code, out) == (0, [])
    assert dict(os.environ) == before


def test_stdin_multi_document_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "good.yaml").read_text()))
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs})
    code, out, _ = run(
        ["check", "--strict", "--config", CONF, "-"], capsys, stdin=io.StringIO(text)
    )
    assert (code, out) == (0, [])


def test_folder_reads_its_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = (MANIFESTS / "good.yaml").read_text().split("---\n")
    for i, doc in enumerate(docs):
        (tmp_path / f"{i}.yaml").write_text(doc)
    (tmp_path / "notes.txt").write_text("not a manifest")
    code, out, _ = run(["check", "--strict", "--config", CONF, str(tmp_path)], capsys)
    assert (code, out) == (0, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: Deployment\n  bad: [indent\n",
            "{f}: not valid YAML at line 2, column 6: mapping values are not allowed here; "
            "fix the syntax (or render templates first, e.g. kubectl kustomize DIR | "
            "gunicorn-zdt check -)",
        ),
        (
            "just: values\n",
            "{f}: document 1 is not a Kubernetes object (no kind); pass only manifests, one "
            "object per YAML document",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: half}\nspec: {replicas: 2}\n",
            "{f}: Deployment/half: spec.template: missing or not a mapping; give the complete "
            "Deployment (render kustomize/helm output first)",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: only}\n",
            "{f}: no Deployment or StatefulSet found; pass the files or folder that hold "
            "your Deployment (or - for kustomize/helm output on stdin)",
        ),
    ],
)
def test_unreadable_manifest_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    code, out, err = run(["check", "--config", CONF, str(path)], capsys)
    assert (code, out) == (2, [])
    assert err[0] == message.replace("{f}", str(path))


def test_missing_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check", "no/such/dir"], capsys)
    assert (code, out, err[0]) == (2, [], "no/such/dir: no such file or folder")


def test_config_that_fails_to_import_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    conf = str(MANIFESTS / "broken.conf.py")
    path = str(MANIFESTS / "good.yaml")
    code, out, err = run(["check", "--config", conf, path], capsys)
    assert (code, out) == (2, [])
    assert err == [
        f"{path}: Deployment/app: {conf}: cannot load the Gunicorn config: "
        "ModuleNotFoundError: No module named 'gunicorn_zdt_no_such_module'; fix it "
        "(try: gunicorn --check-config ...) or pass --config",
        "gunicorn-zdt check: 0 error(s), 0 warning(s) in 0 workload(s), input errors above",
    ]


@pytest.mark.parametrize(
    ("argv", "code"),
    [([], 2), (["check"], 2), (["check", "--bogus", "x"], 2), (["--help"], 0)],
)
def test_usage_exit_codes(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == code
    capsys.readouterr()


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn_zdt",
            "check",
            "--config",
            CONF,
            str(MANIFESTS / "probe-port.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1
    assert "error[probe-port]" in done.stdout


def test_probes_on_the_probe_listener_port_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ZDT_PROBE_BIND the listener answers the probes on its own port: not a finding."""
    text = (MANIFESTS / "good.yaml").read_text().replace("port: probes}", "port: 8081}")
    assert text.count("port: 8081}") == 3
    listener = tmp_path / "listener.yaml"
    listener.write_text(text)
    assert run(["check", "--strict", "--config", CONF, str(listener)], capsys)[:2] == (0, [])
    without = tmp_path / "without.yaml"
    without.write_text(text.replace('ZDT_PROBE_BIND, value: "0.0.0.0:8081"', 'OTHER, value: ""'))
    code, out, _ = run(["check", "--config", CONF, str(without)], capsys)
    assert code == 1
    assert len([o for o in out if "error[probe-port]: port 8081 is not the port" in o]) == 3


# --- the whole pod, every disruption, the load balancer in front (tests/manifests/pod/) --

POD = MANIFESTS / "pod"
SIDECAR_WHY = (
    ": a database or mesh proxy then takes the app's dependencies away in the middle of its "
    "drain (writes and readiness checks fail for the wrong reason); "
)
NATIVE_FIX = (
    "make it a native sidecar (move it to initContainers with restartPolicy: Always, "
    "Kubernetes >= 1.29: it stops after the app), or give it a preStop sleep of 28 s or more"
)
LISTENER_WHY = (
    "routes users to the probe listener's port 8081 (ZDT_PROBE_BIND): probes and /metrics "
    "are for the kubelet and Prometheus, and anyone who can reach them can flood them and "
    "get healthy pods restarted"
)
SERVICE_TO_LISTENER = (
    "{f}: Service/app: spec.ports[metrics].targetPort: error[listener-exposed]: "
    + LISTENER_WHY
    + "; use targetPort: http (scrape /metrics with a PodMonitor or pod annotations, not "
    "through a Service)"
)
DRAIN_LEAVES_NOTHING = (
    "a rollout surges a new pod first, but a node drain or eviction deletes the only pod "
    "before a replacement is ready, and nothing serves meanwhile; run 2 or more, with a "
    "PodDisruptionBudget maxUnavailable: 1"
)

#: Breaking manifests of the pod-wide rules -> their exact findings (the file's first line
#: says what it breaks).
POD_CASES: dict[str, list[str]] = {
    "probe-grace": [
        "{f}: Deployment/app: spec.template.spec.containers[web].livenessProbe."
        "terminationGracePeriodSeconds: error[probe-grace]: terminationGracePeriodSeconds 10 < "
        "preStop 0 + drain 5 + graceful_timeout 23 + margin 2 = 30: a liveness restart SIGKILLs "
        "the requests still in flight; raise it to 30, or remove it (the pod's 30 s then applies)"
    ],
    "route-port": [
        "{f}: Ingress/app: spec.rules[0].http.paths[0].backend: error[route-port]: Service/app has "
        "no port 8080 (it has 80 (http)): this route sends traffic nowhere; use one of the "
        "Service's ports"
    ],
    "sidecar-plain": [
        "{f}: Deployment/app: spec.template.spec.containers[db-proxy]: warning[sidecar]: it "
        "gets SIGTERM at the same moment as Gunicorn and may exit at once"
        + SIDECAR_WHY
        + NATIVE_FIX
    ],
    "sidecar-short-prestop": [
        "{f}: Deployment/app: spec.template.spec.containers[db-proxy].lifecycle.preStop: "
        "warning[sidecar]: its preStop sleep 27 s ends before Gunicorn's graceful deadline "
        "(preStop + drain + graceful_timeout = 28 s)" + SIDECAR_WHY + NATIVE_FIX
    ],
    "sidecar-sigterm-delay": [
        "{f}: Deployment/app: spec.template.spec.containers[db-proxy].args: warning[sidecar]: "
        "--max-sigterm-delay 10 s ends before Gunicorn's graceful deadline (28 s)"
        + SIDECAR_WHY
        + "raise --max-sigterm-delay to 28s, or "
        + NATIVE_FIX
    ],
    "port-clash": [
        "{f}: Deployment/app: spec.template.spec.initContainers[db-proxy].ports: "
        "error[port-clash]: containerPort 8081 is the probe listener's: the containers of a "
        "pod share one network, so one of the two cannot bind it and probes or the Service "
        "reach the wrong process; give it another port"
    ],
    "replicas-one": [
        "{f}: Deployment/app: spec.replicas: warning[replicas]: 1 replica: " + DRAIN_LEAVES_NOTHING
    ],
    "statefulset-one": [
        "{f}: StatefulSet/app: spec.replicas: error[replicas]: 1 replica: a StatefulSet "
        "deletes each pod before it starts its replacement (podManagementPolicy Parallel "
        "changes only scaling), so every rollout and every node drain leaves nothing "
        "serving; run 2 or more"
    ],
    "hpa-min-one": [
        "{f}: HorizontalPodAutoscaler/app: spec.minReplicas: warning[replicas]: "
        "HorizontalPodAutoscaler/app minReplicas 1: " + DRAIN_LEAVES_NOTHING
    ],
    "hpa-replicas": [
        "{f}: Deployment/app: spec.replicas: warning[replicas]: HorizontalPodAutoscaler/app "
        "scales this Deployment, yet spec.replicas is 3: every kubectl apply sets the count "
        "back and removes the pods the autoscaler added at once; remove spec.replicas (the "
        "autoscaler owns it)"
    ],
    "hpa-pdb-blocking": [
        "{f}: PodDisruptionBudget/app: spec.minAvailable: error[pdb]: minAvailable 2 with 2 "
        "replicas (Deployment/app, HorizontalPodAutoscaler/app minReplicas) allows no "
        "eviction: every node drain blocks until someone deletes the pod by hand; use "
        "maxUnavailable: 1"
    ],
    "liveness-app-port": [
        "{f}: Deployment/app: spec.template.spec.containers[web].livenessProbe.httpGet.port: "
        "warning[probe-listener]: liveness on the app's port 8080: 2 workers x 4 threads "
        "(gthread) can all be busy, and then the probe waits behind requests, times out, and "
        "the kubelet restarts a pod that is only busy; point the three probes at the probe "
        "listener's port 8081"
    ],
    "listener-service": [SERVICE_TO_LISTENER],
    "listener-ingress": [
        SERVICE_TO_LISTENER,
        "{f}: Ingress/app: spec.rules[0].http.paths[1].backend: error[listener-exposed]: "
        "Service/app port 9090 " + LISTENER_WHY + "; point it at the app's port",
    ],
    "two-workloads": [
        "{f}: Deployment/worker: spec.replicas: warning[replicas]: 1 replica: "
        + DRAIN_LEAVES_NOTHING
    ],
}

#: Passing manifests: realistic streams the new rules must leave alone.
POD_PASSING = ("hpa", "ingress", "sidecar-native", "sidecar-prestop", "statefulset")


@pytest.mark.parametrize("name", sorted(POD_CASES))
def test_pod_wide_manifest_gives_exactly_its_findings(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(POD / f"{name}.yaml")
    code, out, _ = run(["check", "--config", CONF, path], capsys)
    assert out == [line.replace("{f}", path) for line in POD_CASES[name]]
    assert code == (1 if any("error[" in line for line in out) else 0)
    assert run(["check", "--strict", "--config", CONF, path], capsys)[0] == 1


@pytest.mark.parametrize("name", POD_PASSING)
def test_pod_wide_passing_manifest_is_clean_even_strict(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["check", "--strict", "--config", CONF, str(POD / f"{name}.yaml")], capsys)
    assert (code, out) == (0, [])
    assert err == ["gunicorn-zdt check: 0 error(s), 0 warning(s) in 1 workload(s)"]


@pytest.mark.skipif(
    importlib.util.find_spec("kubernetes_validate") is None,
    reason="kubernetes-validate is not installed (pip install kubernetes-validate)",
)
@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_pod_wide_manifests_are_schema_valid(version: str) -> None:
    """The fixtures are real manifests: what passes here passes the API server's schema."""
    files = sorted(str(p) for p in POD.glob("*.yaml"))
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_unknown_kinds_are_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(POD / "two-workloads.yaml")
    code, _, err = run(["check", "--config", CONF, path], capsys)
    assert code == 0
    assert err == [
        f"{path}: CronJob/cleanup: skipped: the check does not read CronJob",
        "gunicorn-zdt check: 0 error(s), 1 warning(s) in 2 workload(s)",
    ]


def _pod_edited(tmp_path: Path, edit, source: Path = MANIFESTS / "good.yaml") -> str:  # type: ignore[no-untyped-def]
    docs = list(yaml.safe_load_all(source.read_text()))
    edit(docs)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


@pytest.mark.parametrize(
    ("sleep_seconds", "warns"),
    [(27, True), (28, False), (29, False)],  # the app's graceful deadline: 0 + 5 + 23 = 28
)
def test_sidecar_prestop_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sleep_seconds: int, warns: bool
) -> None:
    def edit(docs: list) -> None:
        proxy = docs[0]["spec"]["template"]["spec"]["containers"][1]
        proxy["lifecycle"]["preStop"]["sleep"]["seconds"] = sleep_seconds

    path = _pod_edited(tmp_path, edit, POD / "sidecar-prestop.yaml")
    _, out, _ = run(["check", "--strict", "--config", CONF, path], capsys)
    assert [line.split(": ")[3] for line in out] == (["warning[sidecar]"] if warns else [])


@pytest.mark.parametrize(
    ("min_replicas", "finding"),
    [(1, "warning[replicas]"), (2, None), (3, None)],
)
def test_hpa_min_replicas_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], min_replicas: int, finding: str | None
) -> None:
    def edit(docs: list) -> None:
        docs[3]["spec"]["minReplicas"] = min_replicas

    path = _pod_edited(tmp_path, edit, POD / "hpa.yaml")
    _, out, _ = run(["check", "--strict", "--config", CONF, path], capsys)
    assert [line.split(": ")[3] for line in out] == ([finding] if finding else [])


def test_hpa_min_replicas_not_a_number_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(docs: list) -> None:
        docs[3]["spec"]["minReplicas"] = "two"

    path = _pod_edited(tmp_path, edit, POD / "hpa.yaml")
    code, out, err = run(["check", "--strict", "--config", CONF, path], capsys)
    assert (code, out) == (2, [])
    assert err[0] == (
        f"{path}: HorizontalPodAutoscaler/app: spec.minReplicas: 'two' is not a whole number "
        ">= 1; write it as a number, e.g. minReplicas: 2"
    )


def test_hpa_for_another_workload_is_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(docs: list) -> None:
        docs[3]["spec"]["scaleTargetRef"]["name"] = "other"
        docs[0]["spec"]["replicas"] = 3

    path = _pod_edited(tmp_path, edit, POD / "hpa-min-one.yaml")
    assert run(["check", "--strict", "--config", CONF, path], capsys)[:2] == (0, [])


# --- --lb presets: the propagation the budget must cover ---------------------------------


def _lb_findings(
    capsys: pytest.CaptureFixture[str], path: str, *lb_args: str
) -> tuple[int, list[str]]:
    code, out, _ = run(["check", "--config", CONF, *lb_args, path], capsys)
    return code, out


GOOD = str(MANIFESTS / "good.yaml")
PROPAGATION_FIELD = (
    "{f}: Deployment/app: spec.template.spec.containers[web].env[ZDT_DRAIN_SECONDS]: "
    "error[propagation]: "
)
ARRIVE = "new connections may still arrive after the listeners close"


@pytest.mark.parametrize(
    ("failure_threshold", "propagation"),
    [(2, None), (3, 7)],  # 2 s x 2 + sync 1 = 5 = drain (exactly at); x 3 = 7 > 5
)
def test_lb_serving_follows_the_readiness_probe(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    failure_threshold: int,
    propagation: int | None,
) -> None:
    def edit(docs: list) -> None:
        probe = docs[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        probe["failureThreshold"] = failure_threshold

    path = _pod_edited(tmp_path, edit)
    code, out = _lb_findings(capsys, path, "--lb", "serving")
    if propagation is None:
        assert (code, out) == (0, [])
        return
    # the readiness-period warning says the same from the probe's side
    assert [line.split(": ")[3] for line in out[1:]] == ["warning[readiness-period]"]
    assert out[:1] == [
        PROPAGATION_FIELD.replace("{f}", path)
        + f"preStop 0 + drain 5 < propagation {propagation} (--lb serving: preStop 0 + "
        f"readiness 2 s x {failure_threshold} + sync 1): {ARRIVE}; raise ZDT_DRAIN_SECONDS by "
        "2 or lower the readiness probe's periodSeconds x failureThreshold (a preStop sleep "
        "does not help: the pod stays ready while it sleeps)"
    ]
    assert code == 1


@pytest.mark.parametrize(("sync", "fails"), [(4, False), (5, False), (6, True)])
def test_lb_kube_proxy_sync_boundary(
    capsys: pytest.CaptureFixture[str], sync: int, fails: bool
) -> None:
    code, out = _lb_findings(capsys, GOOD, "--lb", f"kube-proxy:sync={sync}")
    if not fails:
        assert (code, out) == (0, [])
        return
    assert out == [
        PROPAGATION_FIELD.replace("{f}", GOOD)
        + f"preStop 0 + drain 5 < propagation 6 (--lb kube-proxy: sync 6): {ARRIVE}; raise "
        "ZDT_DRAIN_SECONDS by 1 or add a native preStop sleep"
    ]


def test_lb_aws_alb_needs_a_prestop_sleep(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _lb_findings(capsys, GOOD, "--lb", "aws-alb")
    assert code == 1
    assert out == [
        PROPAGATION_FIELD.replace("{f}", GOOD)
        + f"preStop 0 + drain 5 < propagation 30 (--lb aws-alb: health check 15 s x 2 + sync "
        f"0): {ARRIVE}; add a native preStop sleep of 25 s (lifecycle.preStop.sleep.seconds, "
        "ZDT_PRESTOP_SECONDS and the grace period with it), or lower the load balancer's "
        "health-check interval x unhealthy threshold"
    ]


@pytest.mark.parametrize(
    ("interval", "threshold", "fails"),
    [(5, 1, False), (2, 3, True), (1, 5, False), (3, 2, True)],  # x = 5, 6, 5, 6 vs P+D = 5
)
def test_lb_cloud_interval_times_threshold_boundary(
    capsys: pytest.CaptureFixture[str], interval: int, threshold: int, fails: bool
) -> None:
    spec = f"cloud:interval={interval},threshold={threshold}"
    code, out = _lb_findings(capsys, GOOD, "--lb", spec)
    assert [line.split(": ")[3] for line in out] == (["error[propagation]"] if fails else [])
    assert code == (1 if fails else 0)


@pytest.mark.parametrize(("delay", "warns"), [(27, True), (28, False), (29, False)])
def test_lb_deregistration_delay_boundary(
    capsys: pytest.CaptureFixture[str], delay: int, warns: bool
) -> None:
    """The app answers until preStop 0 + drain 5 + graceful_timeout 23 = 28 s."""
    code, out = _lb_findings(capsys, GOOD, "--lb", f"aws-alb:interval=1,threshold=2,delay={delay}")
    expected = [
        f"{GOOD}: Deployment/app: --lb aws-alb: warning[lb-deregistration]: deregistration "
        f"delay {delay} < preStop 0 + drain 5 + graceful_timeout 23 = 28: the load balancer "
        "closes connections of requests the pod is still answering; raise the delay to 28 "
        "(e.g. deregistration_delay.timeout_seconds) or lower graceful_timeout"
    ]
    assert out == (expected if warns else [])
    assert code == 0


def test_min_propagation_overrides_the_lb_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert _lb_findings(capsys, GOOD, "--lb", "aws-alb", "--min-propagation", "5") == (0, [])


@pytest.mark.parametrize(("own", "fails"), [("4", False), ("6", True)])
def test_container_min_propagation_wins_when_larger_than_the_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], own: str, fails: bool
) -> None:
    def edit(docs: list) -> None:
        env = docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
        env.append({"name": "ZDT_MIN_PROPAGATION_SECONDS", "value": own})

    path = _pod_edited(tmp_path, edit)
    code, out = _lb_findings(capsys, path, "--lb", "kube-proxy")
    if not fails:
        assert (code, out) == (0, [])
        return
    assert out == [
        PROPAGATION_FIELD.replace("{f}", path)
        + f"preStop 0 + drain 5 < propagation 6: {ARRIVE}; raise ZDT_DRAIN_SECONDS or add a "
        "preStop sleep"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "f5",
            "--lb 'f5': unknown preset 'f5'; use one of kube-proxy, serving, aws-alb, nginx, "
            "aws-nlb, gke-neg, cloud "
            "(options: NAME:interval=S,threshold=N,delay=S,sync=S,idle=S)",
        ),
        (
            "cloud:period=5",
            "--lb 'cloud:period=5': unknown option 'period'; use interval=S, threshold=N, "
            "delay=S, sync=S or idle=S",
        ),
        (
            "cloud:threshold=0",
            "--lb 'cloud:threshold=0': threshold='0' must be a number of checks >= 1, e.g. "
            "threshold=2",
        ),
        (
            "aws-alb:delay=soon",
            "--lb 'aws-alb:delay=soon': delay='soon' must be a number of seconds >= 0, e.g. "
            "delay=2",
        ),
    ],
)
def test_bad_lb_is_one_usage_line(
    capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    code, out, err = run(["check", "--lb", value, GOOD], capsys)
    assert (code, out) == (2, [])
    assert err[-1] == f"gunicorn-zdt check: error: argument --lb: {message}"


@pytest.mark.parametrize(
    "text",
    [
        "- just\n- a list\n",
        "42\n",
        "apiVersion: v1\nkind: List\nitems: [1, two]\n",
        "\x00\x01binary",
    ],
    ids=["yaml-list", "scalar", "list-kind-of-scalars", "binary"],
)
def test_bad_documents_are_one_line_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    code, out, err = run(["check", "--config", CONF, str(path)], capsys)
    assert (code, out) == (2, [])
    assert all("Traceback" not in line for line in err)
    assert err[0].startswith(f"{path}: ")
    assert len(err) == 2  # the one line, then the summary
