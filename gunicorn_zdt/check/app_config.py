"""Load a Gunicorn config the way Gunicorn itself would inside the pod.

Gunicorn's own loader runs (``gunicorn.app.base.Application.load_config``): the
container's command line, ``GUNICORN_CMD_ARGS`` and the config file, with Gunicorn's
priority (CLI > ``GUNICORN_CMD_ARGS`` > file). While it runs, ``os.environ`` is the
container's literal env (``ZDT_*``, ``PORT``, ``WEB_CONCURRENCY``, ...) laid over the
caller's environment without those names, so a config that calls
``gunicorn_zdt.hooks.install(globals())`` derives ``graceful_timeout`` exactly as in
the pod. The working directory is not changed (``--chdir`` is ignored).
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

from ..k8s.commands import gunicorn_argv
from ..plan import DrainPlan

__all__ = ["ConfigLoadError", "GunicornView", "gunicorn_argv", "load"]

#: Modules that read the environment when imported: loaded afresh for every pod.
ENV_READING_MODULES = ("gunicorn_zdt.conf",)

#: Names a container's env replaces wholesale while the config loads (the caller's
#: values for them must not leak into the pod's view).
POD_ONLY_ENV = ("PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")


class ConfigLoadError(Exception):
    """The Gunicorn config could not be loaded; ``str()`` is the one-line report."""


@dataclass(frozen=True)
class GunicornView:
    """Gunicorn's settings as loaded, and what ``install()`` resolved (if it ran)."""

    cfg: Any  # gunicorn.config.Config
    location: str | None  # -c value in effect
    installed: bool  # the config called gunicorn_zdt.hooks.install
    plan: DrainPlan | None
    plan_error: str | None

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
    """``os.environ`` as the container sees it (for our names), restored afterwards."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith("ZDT_") or name in POD_ONLY_ENV:
                del os.environ[name]
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
    for name in ENV_READING_MODULES:
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
    installed, plan, error = _installed_plan(cfg)
    return GunicornView(cfg, cfg.config, installed, plan, error)


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


def _installed_plan(cfg: Any) -> tuple[bool, DrainPlan | None, str | None]:
    """What ``install()`` resolved (explicit arguments included), from its ``on_starting`` hook."""
    hook = cfg.on_starting
    if not hasattr(hook, "zdt_plan"):
        return False, None, None
    return True, hook.zdt_plan, hook.zdt_error
