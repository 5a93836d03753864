"""What a worker class means for the drain: one table for the hooks, the ASGI wiring and check."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gunicorn_zdt.core import workers


@pytest.mark.parametrize(
    ("worker_class", "kind", "keeps_alive", "slots"),
    [
        ("sync", "sync", False, 1),
        ("gunicorn.workers.sync.SyncWorker", "sync", False, 1),
        ("gthread", "gthread", True, 4),
        ("gunicorn.workers.gthread.ThreadWorker", "gthread", True, 4),
        ("gevent", "gevent", True, 1),  # one event loop, not worker_connections
        ("gunicorn.workers.ggevent.GeventWorker", "gevent", True, 1),
        ("gevent_pywsgi", "gevent_pywsgi", True, 1),
        ("eventlet", "eventlet", True, 1),
        ("asgi", "asgi", True, 1),
        ("uvicorn_worker.UvicornWorker", "uvicorn", True, 1),
        ("uvicorn.workers.UvicornWorker", "uvicorn", True, 1),
        ("geventwebsocket.gunicorn.workers.GeventWebSocketWorker", "geventwebsocket", True, 1),
        ("mypkg.workers.Custom", "custom", True, 1),
    ],
)
def test_worker_kind_table(worker_class: str, kind: str, keeps_alive: bool, slots: int) -> None:
    cfg = SimpleNamespace(worker_class_str=worker_class, threads=4)
    assert workers.kind(worker_class) == kind
    assert workers.keeps_alive(cfg) is keeps_alive
    assert workers.requests_per_worker(cfg) == slots


def test_must_close_is_ignored_only_by_the_pywsgi_servers() -> None:
    ignored = {
        k
        for k in ("sync", "gthread", "gevent", "asgi", "uvicorn")
        if k in workers.MUST_CLOSE_IGNORED
    }
    assert ignored == set()
    assert workers.kind("gevent_pywsgi") in workers.MUST_CLOSE_IGNORED
    assert {"gevent", "eventlet"} == workers.COOPERATIVE


def test_asgi_kind_reads_the_class_hierarchy_without_importing_it() -> None:
    uvicorn = type("UvicornWorker", (), {"__module__": "uvicorn_worker"})
    sub = type("MyWorker", (uvicorn,), {"__module__": "mine"})
    asgi = type("ASGIWorker", (), {"__module__": "gunicorn.workers.gasgi"})
    plain = type("ThreadWorker", (), {"__module__": "gunicorn.workers.gthread"})
    assert [workers.asgi_kind(c) for c in (uvicorn, sub, asgi, plain)] == [
        "uvicorn",
        "uvicorn",
        "asgi",
        None,
    ]
