"""One app with two readiness checks, ``up`` (passes) and ``down`` (fails), for query tables."""

from flask import Flask

from gunicorn_zdt.probes import Probes
from tests.pid_header import with_worker_pid

flask = Flask(__name__)
probes = Probes(flask)
probes.add_check("up", lambda: True)


def _down() -> None:
    raise ConnectionError("db at 10.0.0.5:5432 refused")


probes.add_check("down", _down)

app = with_worker_pid(flask)
