"""A small real service: items stored with SQLAlchemy 2, a slow endpoint, and the probes.

Nothing here touches the database at import or boot time: the schema is created by
the first readiness check (or the first request) that reaches the database, so a
worker boots, and liveness answers, even while the database is down.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, request
from sqlalchemy import Engine, String, Text, create_engine, event, inspect, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from gunicorn_zdt.checks import sqlalchemy_ping
from gunicorn_zdt.phase import wait_stopping
from gunicorn_zdt.probes import Probes

MAX_WORK_MS = 10_000
MAX_ID_LENGTH = 200
RECONNECT_MS = 1000  # the `retry:` hint of the final event: reconnect after this long


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    data: Mapped[str] = mapped_column(Text)


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'example_app.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 5})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers never block the writer; several worker processes share the file.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    # connect_timeout: a database that accepts no connection (network partition, SYN dropped)
    # must not hold a readiness check's thread for the kernel's 2-minute connect timeout.
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        connect_args=connect_args,
    )


class Schema:
    """Creates the tables once, on first use; retried until it works.

    Every worker of every pod runs this at about the same time against one database, and
    ``create_all`` checks before it creates: a sibling can create a table in between. Its
    "already exists" error (SQLite: OperationalError; PostgreSQL: duplicate table or type)
    means the work is done, which a second look confirms; retried with backoff for ~3.5 s,
    then the error.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self.ready = False

    def ensure(self) -> None:
        if self.ready:
            return
        with self._lock:
            pauses = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
            while not self.ready:
                try:
                    Base.metadata.create_all(self.engine)
                    self.ready = True
                except DBAPIError:
                    # A sibling created a table, or holds the lock while it does (SQLite
                    # answers "database is locked" at once to a reader that wants to write
                    # after another writer committed): look again, then retry after a
                    # pause, as a busy handler would.
                    try:
                        existing = inspect(self.engine)
                        self.ready = all(existing.has_table(t) for t in Base.metadata.tables)
                    except DBAPIError as look:
                        # The look met a sibling's write lock: pause and retry. Anything
                        # else (a server that is down) fails this check run at once.
                        if not _sqlite_locked(look):
                            raise
                    if not self.ready:
                        if not pauses:
                            raise
                        time.sleep(pauses.pop(0))


def _sqlite_locked(error: DBAPIError) -> bool:
    """SQLite's "database is locked": a sibling writes right now, not a broken database."""
    return isinstance(error.orig, sqlite3.OperationalError) and "locked" in str(error.orig)


def create_app(database_url: str | None = None) -> Flask:
    app = Flask(__name__)
    engine = make_engine(database_url or os.environ.get("DATABASE_URL") or default_database_url())
    schema = Schema(engine)
    app.extensions["example_engine"] = engine

    probes = Probes(app)
    ping = sqlalchemy_ping(engine)

    def database() -> None:
        schema.ensure()
        ping()

    probes.add_check("database", database)

    @app.get("/")
    def index() -> Any:
        return jsonify(service="gunicorn-zdt example", pid=os.getpid())

    @app.post("/items")
    def put_item() -> Any:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            abort(400, description='send a JSON object with a string "id", e.g. {"id": "a1"}')
        item_id = payload["id"]
        if not 0 < len(item_id) <= MAX_ID_LENGTH:
            abort(400, description=f'"id" must be 1 to {MAX_ID_LENGTH} characters long')
        delay_ms = payload.get("delay_ms", 0)
        if type(delay_ms) is not int or not 0 <= delay_ms <= MAX_WORK_MS:
            abort(400, description=f'"delay_ms" must be a whole number from 0 to {MAX_WORK_MS}')
        schema.ensure()
        with Session(engine) as session:
            session.add(Item(id=item_id, data=json.dumps(payload, sort_keys=True)))
            try:
                if delay_ms:  # fault tests: the INSERT is sent, the transaction stays open
                    session.flush()
                    time.sleep(delay_ms / 1000)
                session.commit()  # 201 only after the commit returned
            except IntegrityError:
                session.rollback()
                return jsonify(id=item_id, created=False), 200
        return jsonify(id=item_id, created=True), 201

    @app.get("/items/<item_id>")
    def get_item(item_id: str) -> Any:
        schema.ensure()
        with Session(engine) as session:
            item = session.scalar(select(Item).where(Item.id == item_id))
        if item is None:
            abort(404, description=f"no item {item_id!r}")
        return jsonify(id=item.id, data=json.loads(item.data))

    @app.get("/work")
    def work() -> Any:
        raw = request.args.get("ms", "0")
        try:
            ms = int(raw)
        except ValueError:
            ms = -1
        if not 0 <= ms <= MAX_WORK_MS:
            abort(400, description=f"ms must be a whole number from 0 to {MAX_WORK_MS}")
        time.sleep(ms / 1000)
        return jsonify(slept_ms=ms, pid=os.getpid())

    @app.get("/events")
    def events() -> Any:
        """Server-sent events, one a second; when the graceful stop begins (after the drain,
        so a reconnect lands on a ready pod) a final `reconnect` event, then the end."""

        def stream() -> Any:
            n = 0
            while True:
                n += 1
                yield f"id: {n}\nevent: tick\ndata: {json.dumps({'n': n, 'pid': os.getpid()})}\n\n"
                if wait_stopping(1.0):
                    yield f"event: reconnect\nretry: {RECONNECT_MS}\ndata: {{}}\n\n"
                    return

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(stream(), mimetype="text/event-stream", headers=headers)

    @app.errorhandler(400)
    @app.errorhandler(404)
    def client_error(exc: Any) -> Any:
        return jsonify(error=exc.description), exc.code

    return app
