"""A second WSGI app in a module of its own: startup is explicit, GET/POST /started marks it.

Kept apart from tests.apps so that a worker loading it has only this app registered
(the readiness verdict of a worker covers every app it created).
"""

from flask import Flask

from gunicorn_zdt.probes import Probes
from tests.pid_header import with_worker_pid

flask = Flask(__name__)
probes = Probes(flask, startup="explicit")


@flask.route("/started", methods=["GET", "POST"])
def started() -> dict[str, str]:
    probes.mark_started()
    return {"status": "marked"}


app = with_worker_pid(flask)
