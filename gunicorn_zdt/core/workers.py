"""What a Gunicorn worker class means for the drain, decided once. Pure, stdlib only.

Gunicorn names a worker class by a short name (``sync``, ``gthread``, ``gevent``,
``eventlet``, ``asgi``) or a dotted path (``uvicorn_worker.UvicornWorker``,
``gunicorn.workers.ggevent.GeventWorker``). The hooks (capacity, warnings), the ASGI
wiring and ``gunicorn-zdt check`` all ask here.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "COOPERATIVE",
    "MUST_CLOSE_IGNORED",
    "asgi_kind",
    "keeps_alive",
    "kind",
    "requests_per_worker",
]

#: Event-loop workers: one CPU for every connection of the worker.
COOPERATIVE = frozenset({"gevent", "eventlet"})
#: Worker classes whose requests ignore ``req.must_close``: keep-alive connections are not
#: closed during the drain by the hooks (uvicorn-worker is handled by the ASGI middleware).
MUST_CLOSE_IGNORED = frozenset({"gevent_pywsgi", "geventwebsocket"})

_DOTTED = {
    "gunicorn.workers.sync.syncworker": "sync",
    "gunicorn.workers.gthread.threadworker": "gthread",
    "gunicorn.workers.ggevent.geventworker": "gevent",
    "gunicorn.workers.ggevent.geventpywsgiworker": "gevent_pywsgi",
    "gunicorn.workers.geventlet.eventletworker": "eventlet",
    "gunicorn.workers.gasgi.asgiworker": "asgi",
}


def kind(worker_class: str) -> str:
    """``sync``, ``gthread``, ``gevent``, ``gevent_pywsgi``, ``eventlet``, ``asgi``,
    ``uvicorn``, ``geventwebsocket``, or the class name itself, lower case."""
    name = str(worker_class).strip().lower()
    if name in _DOTTED:
        return _DOTTED[name]
    if name.startswith(("uvicorn_worker.", "uvicorn.workers.")):
        return "uvicorn"
    if "geventwebsocket" in name:
        return "geventwebsocket"
    return name.rsplit(".", 1)[-1] if "." in name else name


def keeps_alive(cfg: Any) -> bool:
    """The sync worker closes every connection itself; keepalive matters for the others."""
    return kind(cfg.worker_class_str) != "sync"


def requests_per_worker(cfg: Any) -> int:
    """One worker's request slots: the capacity the utilisation metric divides by.

    A thread for sync (1) and gthread (``threads``; Gunicorn reports sync with threads > 1
    as gthread). For gevent/eventlet, the worker's one event loop (1), not
    ``worker_connections``: greenlets share one CPU, so 1000 connections made the ratio
    read 0.03 on a pod whose CPUs were saturated. Utilisation then means, for every class,
    the share of request slots busy now.
    """
    if kind(cfg.worker_class_str) == "gthread":
        return max(1, int(cfg.threads))
    return 1


def asgi_kind(worker_type: type) -> str | None:
    """``uvicorn`` or ``asgi`` for a worker object's class (by its MRO's names, so neither
    is imported), else None: an ASGI worker calls no Gunicorn request hook."""
    names = [f"{c.__module__}.{c.__name__}" for c in worker_type.__mro__]
    if any(n.startswith(("uvicorn_worker.", "uvicorn.workers.")) for n in names):
        return "uvicorn"
    if "gunicorn.workers.gasgi.ASGIWorker" in names:
        return "asgi"
    return None
