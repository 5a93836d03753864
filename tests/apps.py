"""WSGI apps for tests: the example app, answering with the worker's pid in a header.

The header lets a test see which worker answered, to prove a flip reached every worker.
"""

import os

from example_app.app import create_app


def with_worker_pid(wsgi_app):
    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

        return wsgi_app(environ, start)

    return app


flask_app = create_app()
app = with_worker_pid(flask_app)


def _explicit_startup_app():
    """Startup is explicit: POST /started marks it, in whichever worker answers."""
    from flask import Flask

    from gunicorn_zdt.probes import Probes

    flask = Flask(__name__)
    probes = Probes(flask, startup="explicit")

    @flask.post("/started")
    def started():
        probes.mark_started()
        return {"status": "marked"}

    return with_worker_pid(flask)


explicit_startup_app = _explicit_startup_app()
