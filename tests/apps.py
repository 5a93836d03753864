"""WSGI apps for tests: the example app, answering with the worker's pid in a header.

The header lets a test see which worker answered, to prove a flip reached every worker.
"""

from example_app.app import create_app
from tests.pid_header import with_worker_pid

flask_app = create_app()
app = with_worker_pid(flask_app)
