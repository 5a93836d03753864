"""Two apps from one factory sharing a module-level ``Probes``, served by one Gunicorn.

The first app answers at ``/``, the second under ``/second``. Each app's checks fail
while a flag file ``<TEST_FLAG_DIR>/<label>.<check>`` exists, so a test can fail one
check of one app from outside. ``before`` is added before ``init_app``, ``after`` once
both apps exist: both must reach both apps, and the worker's one verdict covers both.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from gunicorn_zdt.probes import Probes
from tests.pid_header import with_worker_pid

probes = Probes()


def flag_check(check: str) -> Callable[[], bool]:
    """Fails while ``<TEST_FLAG_DIR>/<label of the current app>.<check>`` exists."""

    def run() -> bool:
        label = current_app.config["LABEL"]
        return not (Path(os.environ["TEST_FLAG_DIR"]) / f"{label}.{check}").exists()

    return run


probes.add_check("before", flag_check("before"))


def create_app(label: str) -> Flask:
    app = Flask(__name__)
    app.config["LABEL"] = label
    probes.init_app(app)

    @app.route("/publishers")
    def publishers() -> tuple[dict[str, int], int]:
        """This worker's readiness publisher threads: 200 when exactly one, else 500."""
        count = sum(t.name == "zdt-publish" for t in threading.enumerate())
        return {"count": count}, 200 if count == 1 else 500

    return app


first = create_app("first")
second = create_app("second")
probes.add_check("after", flag_check("after"))

app = with_worker_pid(DispatcherMiddleware(first, {"/second": second}))
