"""The example service as a FastAPI app: items in SQLite, a slow endpoint, a readiness check.

Served by Gunicorn with ``uvicorn_worker.UvicornWorker`` or Gunicorn's own ``-k asgi``
(``gunicorn -c example_fastapi/gunicorn.conf.py example_fastapi.app:app``). The probes
(``/healthz/live|ready|startup``) and the drain come from ``install(globals())`` in the
Gunicorn config: it wraps this app in :class:`gunicorn_zdt.asgi.ZdtMiddleware`; the app
only registers its check on :data:`gunicorn_zdt.health.probes`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from gunicorn_zdt.health import probes
from gunicorn_zdt.phase import wait_stopping_async

MAX_WORK_MS = 10_000
MAX_ID_LENGTH = 200


def database_path() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    return str(Path(os.environ.get("TMPDIR", "/tmp")) / "gunicorn-zdt-fastapi.db")


class Store:
    """SQLite, one connection per thread (FastAPI runs `def` endpoints in a thread pool)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._ready = False

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        if not self._ready:
            conn.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, data TEXT)")
            self._ready = True
        return conn


store = Store(database_path())
app = FastAPI(title="gunicorn-zdt example (FastAPI)")


async def database() -> None:
    """Readiness: the database answers (a coroutine check: runs on the app's loop)."""
    await asyncio.to_thread(lambda: store.conn().execute("SELECT 1").fetchone())


probes.add_check("database", database)


@app.get("/")
async def index() -> dict[str, Any]:
    return {"service": "gunicorn-zdt example (FastAPI)", "pid": os.getpid()}


@app.post("/items", status_code=201)
def put_item(payload: Any = Body(None)) -> Any:  # noqa: B008  FastAPI's idiom
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        raise HTTPException(400, 'send a JSON object with a string "id", e.g. {"id": "a1"}')
    item_id = payload["id"]
    if not 0 < len(item_id) <= MAX_ID_LENGTH:
        raise HTTPException(400, f'"id" must be 1 to {MAX_ID_LENGTH} characters long')
    try:
        store.conn().execute(
            "INSERT INTO items (id, data) VALUES (?, ?)",
            (item_id, json.dumps(payload, sort_keys=True)),
        )
    except sqlite3.IntegrityError:
        return JSONResponse({"id": item_id, "created": False}, status_code=200)
    return {"id": item_id, "created": True}


@app.get("/items/{item_id}")
def get_item(item_id: str) -> Any:
    row = store.conn().execute("SELECT data FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"no item {item_id!r}")
    return {"id": item_id, "data": json.loads(row[0])}


@app.get("/work")
async def work(ms: int = 0) -> Any:
    if not 0 <= ms <= MAX_WORK_MS:
        raise HTTPException(400, f"ms must be a whole number from 0 to {MAX_WORK_MS}")
    await asyncio.sleep(ms / 1000)
    return JSONResponse(
        {"slept_ms": ms, "pid": os.getpid()}, headers={"X-Worker-Pid": str(os.getpid())}
    )


@app.get("/events")
async def events() -> StreamingResponse:
    """Server-sent events, one a second; a final `reconnect` event once the graceful stop
    begins (after the drain), without blocking the event loop."""

    async def stream() -> Any:
        n = 0
        while True:
            n += 1
            yield f"id: {n}\nevent: tick\ndata: {json.dumps({'n': n, 'pid': os.getpid()})}\n\n"
            if await wait_stopping_async(1.0):
                yield "event: reconnect\nretry: 1000\ndata: {}\n\n"
                return

    return StreamingResponse(stream(), media_type="text/event-stream")
