"""The Gunicorn side: the hooks installed, Gunicorn as PID 1, what it binds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ...core import settings
from ...core.settings import SettingError
from ...k8s.commands import SHELLS, gunicorn_argv, python_runs_gunicorn, tini_process_group
from ..pod import ERROR, WARNING, Finding, Pod


def rule_hooks(pod: Pod) -> Iterator[Finding]:
    if not pod.view.installed:
        where = pod.view.location or "the Gunicorn config (none given)"
        yield pod.finding(
            "hooks",
            ERROR,
            "gunicorn.config",
            f"{where} does not call gunicorn_zdt.hooks.install(globals()): on SIGTERM "
            "Gunicorn closes its listeners at once, without a drain; add "
            "install(globals()) as its last line, or use -c python:gunicorn_zdt.conf",
        )


def rule_pid1(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    words = [*(w.command or []), *(w.args or [])]
    fld = f"{w.container_field}.command"
    if not words:
        yield pod.finding(
            "pid1",
            WARNING,
            fld,
            "not set: the image's entrypoint runs, and the check cannot see whether Gunicorn "
            "is PID 1 nor which config it loads; set command: [gunicorn, -c, CONF, APP]",
        )
        return
    first = Path(words[0]).name
    if first in SHELLS and len(words) >= 3 and words[1] == "-c":
        if not words[2].lstrip().startswith("exec "):
            yield pod.finding(
                "pid1",
                ERROR,
                fld,
                f"shell form ({words[0]} -c): the shell is PID 1 and does not pass SIGTERM "
                "to Gunicorn, which never drains and is SIGKILLed at the deadline; use exec "
                'form, command: ["gunicorn", ...] (or start the script with exec)',
            )
        return
    yield from _pid1_wrapper(pod, words, fld)


def _pid1_wrapper(pod: Pod, words: list[str], fld: str) -> Iterator[Finding]:
    """Exec form: an init wrapper that signals the process group, or not Gunicorn itself."""
    first = Path(words[0]).name
    # the wrapper's own options: the words before the program it starts
    own = set()
    for word in words[1:]:
        if not word.startswith("-") or word == "--":
            break
        own.add(word)
    if first == "dumb-init" and not {"--single-child", "-c"} & own:
        yield pod.finding(
            "pid1",
            ERROR,
            fld,
            "dumb-init sends SIGTERM to the whole process group: every worker stops at once "
            "instead of serving through the drain; run gunicorn directly (exec form) or use "
            "dumb-init --single-child",
        )
    elif first == "tini" and tini_process_group(own):
        yield pod.finding(
            "pid1",
            ERROR,
            fld,
            "tini -g sends SIGTERM to the whole process group: every worker stops at once "
            "instead of serving through the drain; drop -g, or run gunicorn directly",
        )
    elif not any("gunicorn" in word for word in words):
        yield pod.finding(
            "pid1",
            WARNING,
            fld,
            f"does not start gunicorn ({words[0]}): the check cannot tell whether Gunicorn "
            "gets SIGTERM as PID 1; make the script end with exec gunicorn ..., and set "
            "command to it in exec form",
        )
    elif not (
        first == "gunicorn"
        or (first.startswith("python") and python_runs_gunicorn(words))
        or first in {"tini", "dumb-init"}
    ):
        yield pod.finding(
            "pid1",
            WARNING,
            fld,
            f"gunicorn is started by {words[0]}: unless it execs gunicorn, SIGTERM reaches "
            f"{first} instead of Gunicorn; end it with exec, or run gunicorn directly",
        )


def rule_bind(pod: Pod) -> Iterator[Finding]:
    w, view = pod.workload, pod.view
    binds = view.tcp_binds
    shown = ", ".join(view.cfg.bind)
    if not binds:
        yield pod.finding(
            "bind",
            ERROR,
            "gunicorn.bind",
            f"Gunicorn binds only {shown}: the kubelet's probes and the Service need a TCP "
            "port; bind 0.0.0.0:PORT",
        )
        return
    for host, port in binds:
        if host in {"127.0.0.1", "localhost", "::1"}:
            yield pod.finding(
                "bind",
                ERROR,
                "gunicorn.bind",
                f"Gunicorn binds {host}:{port}: only the pod itself can connect, not the "
                f"probes nor the Service; bind 0.0.0.0:{port}",
            )
    if pod.app_port not in w.container_ports:
        declared = ", ".join(str(p) for p in w.container_ports) or "none"
        yield pod.finding(
            "bind",
            ERROR,
            f"{w.container_field}.ports",
            f"Gunicorn binds port {pod.app_port} but the container declares {declared}; "
            f"declare containerPort: {pod.app_port} (name: http) or {_bind_source(pod)}",
        )


def _bind_source(pod: Pod) -> str:
    """How to move Gunicorn's port: where its bind comes from (CLI > GUNICORN_CMD_ARGS > file)."""
    w = pod.workload
    argv = gunicorn_argv(w.command, w.args) or []
    if any(word in {"-b", "--bind"} or word.startswith("--bind=") for word in argv):
        return "change --bind in the container's command to the declared port"
    cmd_args = w.env.get("GUNICORN_CMD_ARGS")
    if cmd_args and re.search(r"(^|\s)(-b|--bind)(\s|=|$)", cmd_args):
        return (
            "change --bind in GUNICORN_CMD_ARGS to the declared port (it overrides PORT and "
            "the config file)"
        )
    return "set PORT to the declared port"


def rule_startup(pod: Pod) -> Iterator[Finding]:
    """Every reason Gunicorn will refuse to start, in the runtime's own words.

    The lines come from :func:`gunicorn_zdt.core.refusals.startup_refusals`, the code
    ``on_starting`` raises from. Two are left to the rule that already prints the same
    numbers: a budget that does not fit (``grace-period``/``prestop-grace``, with the
    manifest's grace period) and a ``ZDT_*`` value that does not parse (``zdt-env``).
    """
    w = pod.workload
    for refusal in pod.view.refusals():
        if refusal.kind == "budget" and any(p.severity == ERROR for p in pod.budget.problems()):
            continue
        if refusal.kind == "setting" and refusal.line in _unparsable_env_lines(pod):
            continue
        fld = (
            w.env_field(refusal.setting)
            if refusal.setting.startswith("ZDT_")
            else "gunicorn.config"
        )
        yield pod.finding("startup", ERROR, fld, refusal.line)


def _unparsable_env_lines(pod: Pod) -> set[str]:
    """The refusal lines of ``ZDT_*`` values the manifest sets and the zdt-env rule reports."""
    out = set()
    for name, value in pod.workload.env.items():
        if name in settings.BY_NAME:
            try:
                settings.BY_NAME[name].parse(name, value)
            except SettingError as exc:
                out.add(f"gunicorn-zdt: {exc}")
    return out
