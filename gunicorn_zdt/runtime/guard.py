"""Refuse to serve probes under Gunicorn when ``install()`` never ran: the drain would be off.

The Gunicorn-side guards (``on_starting``, ``Arbiter.start``, ``post_fork``) need our code
in the master; a config that never imports gunicorn-zdt has none. The app's probes are
then the only part of gunicorn-zdt that runs: when Gunicorn loads an app with probes and
no ``install()`` ran, the start stops with one line instead of a pod whose readiness never
flips on SIGTERM (before: a warning from each worker, at its first probe). Outside Gunicorn
(``flask run``, tests, another server) nothing happens. Stdlib only.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from ..core import settings
from . import context as runtime

__all__ = ["NOT_INSTALLED", "refuse_unless_installed"]

NOT_INSTALLED = (
    "gunicorn-zdt: Gunicorn loads an app with gunicorn-zdt probes, but its config never "
    "called install(globals()): the drain is off (readiness never flips on SIGTERM); add "
    "`from gunicorn_zdt.hooks import install` and `install(globals())` as the config's last "
    "line, or start Gunicorn with -c python:gunicorn_zdt.conf"
)
_WORKER_BOOT_ERROR = 3  # Gunicorn's exit code for "worker failed to boot": the master halts


def refuse_unless_installed(required: bool | None = None) -> None:
    """Called where an app registers its probes (e.g. ``Probes.init_app``); ``required``:
    ZDT_REQUIRE_INSTALL as the app resolved it (None: from the environment)."""
    if runtime.current() is not None:
        return  # install() ran; its own hooks refuse what is wrong with them
    if not (settings.resolve("ZDT_REQUIRE_INSTALL") if required is None else required):
        return  # asked for: the first probe warns instead
    where, worker = _loaded_by_gunicorn(sys._getframe(1))
    if where == "master":  # preload_app: Gunicorn prints "Error: ..." and exits 1
        raise RuntimeError(NOT_INSTALLED)
    if where == "worker":
        if _first_in_this_pod(worker):
            print(f"Error: {NOT_INSTALLED}", file=sys.stderr, flush=True)
            os._exit(_WORKER_BOOT_ERROR)
        _wait_for_the_master_to_stop(worker)


def _wait_for_the_master_to_stop(worker: Any) -> None:
    """Another worker reported it and exits with the boot error: the master stops every
    worker. Two boot errors would make Gunicorn 27 raise again while it stops (a traceback
    and exit 1), so this one leaves quietly when told to (its SIGTERM may have come while
    it loaded the app: Gunicorn's handler then only cleared ``alive``), or when the master
    is gone."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, lambda *_: os._exit(0))
    master = os.getppid()
    while os.getppid() == master and getattr(worker, "alive", True):
        time.sleep(0.1)
    os._exit(0)


def _loaded_by_gunicorn(frame: FrameType | None) -> tuple[str | None, Any]:
    """("worker", the worker) or ("master", None) when Gunicorn is loading the app up the
    stack, else (None, None)."""
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if path.endswith("/gunicorn/workers/base.py"):
            return "worker", frame.f_locals.get("self")
        if path.endswith("/gunicorn/arbiter.py"):
            return "master", None
        frame = frame.f_back
    return None, None


def _first_in_this_pod(worker: Any) -> bool:
    """One line per master, however many workers boot at once: the master's first worker
    (Gunicorn's ``age`` 1) reports it and exits; no other worker has booted either."""
    return getattr(worker, "age", 1) == 1
