"""The parts of Gunicorn the drain relies on, named once and checked at start-up.

We replace five methods on the arbiter instance (``handle_term``, ``murder_workers``,
``kill_workers``, ``kill_worker``, ``reap_workers``), wrap ``Arbiter.start`` (a hook check
before ``on_starting``), and read its ``LISTENERS``,
rely on ``StopIteration`` raised in a signal handler reaching ``Arbiter.run``'s
``halt()``, wrap ``worker.notify``, and set ``req.must_close``. When a Gunicorn release
changes any of that, Gunicorn refuses to start with one line naming its version and what
is missing, instead of draining silently wrong.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import gunicorn
import gunicorn.http.message

__all__ = ["Arbiter", "Request", "Worker", "missing_surface"]


class Arbiter(Protocol):
    """What the hooks use of Gunicorn's master (``server`` in its hooks)."""

    cfg: Any
    log: Any
    WORKERS: dict[int, Any]

    LISTENERS: list[Any]

    def handle_term(self) -> None: ...
    def murder_workers(self) -> None: ...
    def kill_workers(self, sig: int) -> None: ...
    def kill_worker(self, pid: int, sig: int) -> None: ...
    def reap_workers(self) -> None: ...


class Worker(Protocol):
    """What the hooks use of a Gunicorn worker (``worker`` in its hooks)."""

    log: Any
    alive: bool

    def notify(self) -> None: ...


class Request(Protocol):
    """What ``pre_request`` uses of a parsed request."""

    method: str
    path: str
    must_close: bool
    zdt_entry: int  # set by our pre_request: its entry in the worker's slot


_ARBITER_METHODS = (
    "handle_term",
    "murder_workers",
    "kill_workers",
    "kill_worker",
    "reap_workers",
    "run",
    "start",
)
_ARBITER_ATTRIBUTES = ("cfg", "log", "WORKERS", "LISTENERS")
_WORKER_METHODS = ("notify",)


def missing_surface(server: Any) -> str | None:
    """None when this Gunicorn offers all we rely on, else one line saying what is missing."""
    missing = [f"Arbiter.{m}()" for m in _ARBITER_METHODS if not callable(getattr(server, m, None))]
    missing += [f"Arbiter.{a}" for a in _ARBITER_ATTRIBUTES if not hasattr(server, a)]
    worker_class = getattr(server, "worker_class", None)
    missing += [
        f"{getattr(worker_class, '__name__', 'worker')}.{m}()"
        for m in _WORKER_METHODS
        if not callable(getattr(worker_class, m, None))
    ]
    if not missing:
        run_source = _source(type(server).run)
        if run_source is not None and "StopIteration" not in run_source:
            missing.append("Arbiter.run() halting on StopIteration")
        message_source = _source(gunicorn.http.message)
        if message_source is not None and "must_close" not in message_source:
            missing.append("Request.must_close")
    if not missing:
        return None
    return (
        f"gunicorn-zdt: Gunicorn {gunicorn.__version__} lacks what the drain relies on: "
        f"{', '.join(missing)}; install a Gunicorn release this gunicorn-zdt supports "
        "(see its setup.cfg) or upgrade gunicorn-zdt"
    )


def _source(obj: Any) -> str | None:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # no source shipped (zipapp, .pyc only): trust the rest
        return None
