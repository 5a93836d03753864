"""Load a Gunicorn config the way Gunicorn itself would inside the pod.

Gunicorn's own loader runs (``gunicorn.app.base.Application.load_config``): the
container's command line, ``GUNICORN_CMD_ARGS`` and the config file, with Gunicorn's
priority (CLI > ``GUNICORN_CMD_ARGS`` > file). While it runs, ``os.environ`` is the
container's literal env (``ZDT_*``, ``PORT``, ``WEB_CONCURRENCY``, ...) laid over the
While it runs, ``os.environ`` is exactly the container's environment
(:func:`pod_environ`): the env the manifest resolves to (ConfigMaps and Secrets of the
stream included), over the image's env given with ``--env``, over what every container
has (:data:`CONTAINER_BASE_ENV`), and never the caller's, so a variable exported in the
shell that runs ``check`` cannot change what the config computes. A config that calls
``gunicorn_zdt.hooks.install(globals())`` then derives ``graceful_timeout`` exactly as in
the pod. The working directory is not changed (``--chdir`` is ignored); a config path
under the container's ``workingDir`` is read relative to the current directory
(:func:`local_config_path`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import Application
from gunicorn.util import parse_address

from ..core.plan import DrainPlan
from ..core.refusals import Installed, Refusal, installed_in, startup_refusals
from ..k8s.commands import gunicorn_argv

__all__ = ["ConfigLoadError", "GunicornView", "gunicorn_argv", "load", "local_config_path"]

#: What a container's environment holds before the manifest's env: the OCI default PATH
#: (Docker/containerd set it when the image sets none) and HOME of root. The image's own
#: ENV lines are not in the manifest: pass them with ``--env NAME=VALUE``.
CONTAINER_BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
}

#: Names a container's env replaces wholesale (kept for the timeline without a manifest,
#: which reads them from this shell).
POD_ONLY_ENV = ("PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")


class ConfigLoadError(Exception):
    """The Gunicorn config could not be loaded; ``str()`` is the one-line report."""


@dataclass(frozen=True)
class GunicornView:
    """Gunicorn's settings as loaded, and what ``install()`` resolved (if it ran)."""

    cfg: Any  # gunicorn.config.Config
    location: str | None  # -c value in effect
    install: Installed | None  # what install() resolved, None: the config never called it

    @property
    def installed(self) -> bool:
        """The config called ``gunicorn_zdt.hooks.install``."""
        return self.install is not None

    @property
    def plan(self) -> DrainPlan | None:
        return None if self.install is None else self.install.plan

    @property
    def plan_error(self) -> str | None:
        errors = () if self.install is None else self.install.errors
        return errors[0] if errors else None

    def refusals(self) -> list[Refusal]:
        """Why Gunicorn will refuse to start with this config: the runtime's own code."""
        if self.install is None:
            return []  # no hooks of ours: Gunicorn starts, without a drain (rule hooks)
        return startup_refusals(self.cfg, self.install.plan, self.install.errors)

    @property
    def tcp_binds(self) -> list[tuple[str, int]]:
        out = []
        for address in self.cfg.bind:
            parsed = parse_address(address)
            if isinstance(parsed, tuple):
                out.append((str(parsed[0]), int(parsed[1])))
        return out


class _PodApplication(Application):
    """Gunicorn's Application with an explicit argv and no chdir; never runs anything."""

    def __init__(self, argv: list[str]) -> None:
        self._argv = argv
        super().__init__(usage=None, prog="gunicorn")

    def init(self, parser: Any, opts: Any, args: Any) -> None:
        return None

    def load(self) -> None:  # pragma: no cover - never called: we do not serve
        raise NotImplementedError

    def chdir(self) -> None:
        """The checker's working directory stays where the user ran it."""

    def load_config(self) -> None:
        saved = sys.argv
        sys.argv = ["gunicorn", *self._argv]
        try:
            super().load_config()
        finally:
            sys.argv = saved


@contextlib.contextmanager
def pod_environ(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is the container's: :data:`CONTAINER_BASE_ENV` and ``env``, nothing
    of the caller's; restored afterwards."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(CONTAINER_BASE_ENV)
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load(argv: list[str], env: Mapping[str, str], config: str | None = None) -> GunicornView:
    """Gunicorn's config for a container's ``argv`` and ``env``; ``config`` overrides ``-c``."""
    argv = list(argv)
    if config is not None:
        argv += ["-c", config]
    captured = io.StringIO()
    saved_modules = dict(sys.modules)
    for name in _env_reading_modules(argv):
        sys.modules.pop(name, None)
    try:
        with (
            pod_environ(env),
            contextlib.redirect_stderr(captured),
            contextlib.redirect_stdout(captured),
        ):
            app = _PodApplication(argv)
    except SystemExit as exc:
        raise ConfigLoadError(_one_line(exc, captured.getvalue(), argv)) from None
    except Exception as exc:  # a config's error that Gunicorn does not catch itself
        raise ConfigLoadError(_one_line(exc, captured.getvalue(), argv)) from None
    finally:
        # A pod is a fresh process: forget what this config imported (and __config__,
        # the name Gunicorn runs it under), so the next pod's env is read again.
        for name in set(sys.modules) - set(saved_modules):
            del sys.modules[name]
        sys.modules.update(saved_modules)
    cfg = app.cfg
    for address in cfg.bind:  # Gunicorn parses these only when it binds: it would stop there
        try:
            parse_address(address)
        except (RuntimeError, ValueError) as exc:
            raise ConfigLoadError(_one_line(exc, f"Error: bind {address!r}: {exc}", argv)) from None
    return GunicornView(cfg, cfg.config, installed_in(cfg))


def _env_reading_modules(argv: list[str]) -> list[str]:
    """Modules to import afresh for this pod: they read the environment when imported.

    The ``python:MODULE`` config named on the command line, and every module already
    imported that ran ``install(globals())`` (e.g. the ready-made ``python:`` config a
    config file star-imports): a pod is a fresh process, so they read its env again.
    """
    config = _config_in(argv) or ""
    names = [config.removeprefix("python:")] if config.startswith("python:") else []
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict) and installed_in(namespace) is not None:
            names.append(name)
    return names


def local_config_path(config: str, working_dir: str | None) -> str:
    """The container's config path as a path here: ``/app/conf.py`` with ``workingDir:
    /app`` is ``conf.py`` in the current directory (standing in for the image's tree),
    when the absolute path does not exist on this machine."""
    if config.startswith("python:") or not os.path.isabs(config) or os.path.exists(config):
        return config
    root = (working_dir or "").rstrip("/")
    if root and config.startswith(root + "/"):
        return config[len(root) + 1 :]
    return config


def _one_line(exc: BaseException, output: str, argv: list[str]) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if isinstance(exc, SystemExit) and isinstance(exc.code, str):
        reason = exc.code
    elif lines:
        reason = lines[-1].removeprefix("Error: ")
    else:
        reason = f"{type(exc).__name__}: {exc}"
    location = _config_in(argv) or "Gunicorn's command line"
    return (
        f"{location}: cannot load the Gunicorn config: {reason}; "
        "fix it (try: gunicorn --check-config ...) or pass --config"
    )


def _config_in(argv: list[str]) -> str | None:
    found = None
    for i, word in enumerate(argv):
        if word in {"-c", "--config"} and i + 1 < len(argv):
            found = argv[i + 1]
        elif word.startswith("--config="):
            found = word.split("=", 1)[1]
    return found
