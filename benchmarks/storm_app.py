"""The app under test of ``probe_storm.py``: readiness backed by a real SQLite query.

``STORM_MODE=zdt``: gunicorn-zdt's Probes with ``sqlalchemy_ping`` (single-flight, cached,
bounded by ``ZDT_CHECK_TIMEOUT_SECONDS``). ``STORM_MODE=naive``: the usual hand-written
readiness view that runs the query on every probe, in the request thread.
``STORM_QUERY_MS`` makes the dependency slow (a real SQLite function that sleeps).
Every query the database runs appends one byte to ``STORM_COUNT_FILE``: the benchmark
counts database work from outside the workers.
"""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify
from sqlalchemy import create_engine, event, text

from gunicorn_zdt.checks import sqlalchemy_ping
from gunicorn_zdt.probes import Probes

QUERY_MS = int(os.environ.get("STORM_QUERY_MS", "0"))
COUNT_FILE = os.environ["STORM_COUNT_FILE"]
engine = create_engine(f"sqlite:///{os.environ['STORM_DB']}", pool_size=8, max_overflow=8)


@event.listens_for(engine, "connect")
def _functions(dbapi_conn, _record):
    def sleep_ms(ms: int) -> int:
        time.sleep(ms / 1000)
        return 1

    dbapi_conn.create_function("sleep_ms", 1, sleep_ms)


@event.listens_for(engine, "before_cursor_execute")
def _count(*_args):
    fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


STATEMENT = f"SELECT sleep_ms({QUERY_MS})"
app = Flask(__name__)

if os.environ.get("STORM_MODE") == "naive":

    @app.get("/healthz/ready")
    def ready():
        try:
            with engine.connect() as conn:
                conn.execute(text(STATEMENT))
        except Exception:
            return jsonify(status="failed"), 503
        return jsonify(status="ok")

else:
    probes = Probes(app)
    probes.add_check("database", sqlalchemy_ping(engine, STATEMENT))
