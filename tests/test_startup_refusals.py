"""Integration mistakes stop a real Gunicorn at start, exit 1, with one pinned ``Error:`` line.

Each case is a mistake seen while integrating from the README alone (issue 11): before,
it was silent (the drain quietly off) or a traceback of 14 to 121 lines in every worker.
"""

from __future__ import annotations

import re

import pytest

from gunicorn_zdt.runtime.guard import NOT_INSTALLED
from tests.support import Gunicorn

INSTALL = "from gunicorn_zdt.hooks import install\ninstall(globals())\n"
_INSTALL_LAST = "define your hooks before install(globals()) (it chains them) and call it last"


def _refusal(server: Gunicorn) -> str:
    """Start ``server``, expect exit 1; the one ``Error:`` line (no traceback, no worker)."""
    server.start(wait_ready=False)
    code = server.wait_exit(30)
    log = server.log()
    errors = [line for line in log.splitlines() if line.startswith("Error:")]
    assert code == 1, log
    assert len(errors) == 1, log
    assert "Traceback" not in log, log
    assert "Booting worker" not in log, log  # stopped in the master, before any fork
    return errors[0]


@pytest.mark.parametrize(
    ("config", "env", "line"),
    [
        pytest.param(
            INSTALL + "def pre_request(worker, req):\n    pass\n",
            {},
            "Error: gunicorn-zdt: Gunicorn hook(s) pre_request defined after "
            f"install(globals()) replaced ours, which turns the drain off; {_INSTALL_LAST}",
            id="hook-after-install",
        ),
        pytest.param(
            INSTALL
            + "def when_ready(server):\n    pass\n"
            + "def post_fork(server, worker):\n    pass\n",
            {},
            "Error: gunicorn-zdt: Gunicorn hook(s) when_ready, post_fork defined after "
            f"install(globals()) replaced ours, which turns the drain off; {_INSTALL_LAST}",
            id="two-hooks-after-install",
        ),
        pytest.param(
            "def when_ready(server, extra):\n    pass\n" + INSTALL,
            {},
            "Error: gunicorn-zdt: your Gunicorn hook when_ready takes 2 argument(s); "
            "Gunicorn calls it with 1 (server): fix its signature",
            id="wrong-arity-hook",
        ),
        pytest.param(
            "def pre_request(worker):\n    pass\n" + INSTALL,
            {},
            "Error: gunicorn-zdt: your Gunicorn hook pre_request takes 1 argument(s); "
            "Gunicorn calls it with 2 (worker, req): fix its signature",
            id="wrong-arity-pre-request",
        ),
        pytest.param(
            INSTALL + "def on_starting(server):\n    pass\n",
            {},
            "Error: gunicorn-zdt: Gunicorn hook(s) on_starting defined after "
            f"install(globals()) replaced ours, which turns the drain off; {_INSTALL_LAST}",
            id="on-starting-after-install",
        ),
        pytest.param(
            INSTALL
            + "def on_starting(server):\n    pass\n"
            + "def when_ready(server):\n    pass\n"
            + "def post_fork(server, worker):\n    pass\n",
            {},
            "Error: gunicorn-zdt: Gunicorn hook(s) on_starting, when_ready, post_fork defined "
            f"after install(globals()) replaced ours, which turns the drain off; {_INSTALL_LAST}",
            id="install-first-then-the-users-hooks",
        ),
        pytest.param(
            INSTALL + "del pre_request\n",
            {},
            "Error: gunicorn-zdt: Gunicorn hook(s) pre_request defined after "
            f"install(globals()) replaced ours, which turns the drain off; {_INSTALL_LAST}",
            id="hook-the-runtime-needs-missing",
        ),
        pytest.param(
            "preload_app = True\n",
            {},
            f"Error: {NOT_INSTALLED}",
            id="install-never-called-preload",
        ),
        pytest.param(
            "from gunicorn_zdt.conf import *  # noqa\n",
            {},
            "Error: gunicorn-zdt: the Gunicorn config does not call install(globals()) (or "
            "every hook was redefined after it): add `from gunicorn_zdt.hooks import install` "
            "and `install(globals())` as its last line",
            id="star-import-without-install",
        ),
        pytest.param(
            INSTALL,
            {"ZDT_DRAIN_SECONDS": "1e9"},
            "Error: gunicorn-zdt: ZDT_DRAIN_SECONDS='1e9' is over the limit of 3600 s; use a "
            "number of seconds <= 3600, e.g. ZDT_DRAIN_SECONDS=5",
            id="drain-1e9",
        ),
        pytest.param(
            INSTALL,
            {"ZDT_GRACE_PERIOD_SECONDS": "86401"},
            "Error: gunicorn-zdt: ZDT_GRACE_PERIOD_SECONDS='86401' is over the limit of "
            "86400 s; use a number of seconds <= 86400, e.g. ZDT_GRACE_PERIOD_SECONDS=5",
            id="grace-over-a-day",
        ),
        pytest.param(
            INSTALL,
            {"ZDT_PROBE_PREFIX": "healthz"},
            "Error: gunicorn-zdt: ZDT_PROBE_PREFIX='healthz' must be a URL path starting "
            "with '/', e.g. /healthz",
            id="prefix-without-slash",
        ),
        pytest.param(
            INSTALL,
            {"ZDT_CHECK_TIMEOUT_SECONDS": "0"},
            "Error: gunicorn-zdt: ZDT_CHECK_TIMEOUT_SECONDS='0' must be a finite number of "
            "seconds > 0; e.g. ZDT_CHECK_TIMEOUT_SECONDS=5",
            id="check-timeout-zero",
        ),
        pytest.param(
            INSTALL,
            {"ZDT_CHECK_TIMEOUT_SECONDS": "61"},
            "Error: gunicorn-zdt: ZDT_CHECK_TIMEOUT_SECONDS='61' is over the limit of 60 s; "
            "use a number of seconds <= 60, e.g. ZDT_CHECK_TIMEOUT_SECONDS=5",
            id="check-timeout-over-60",
        ),
        pytest.param(
            INSTALL,
            {"ZDT_EXPOSE_REASONS": "maybe"},
            "Error: gunicorn-zdt: ZDT_EXPOSE_REASONS='maybe' is not a boolean; use true or false",
            id="expose-reasons-maybe",
        ),
        pytest.param(
            "import gunicorn.arbiter\ngunicorn.arbiter.Arbiter.murder_workers = None\n" + INSTALL,
            {},
            "Error: gunicorn-zdt: Gunicorn {version} lacks what the drain relies on: "
            "Arbiter.murder_workers(); install a Gunicorn release this gunicorn-zdt supports "
            "(see its setup.cfg) or upgrade gunicorn-zdt",
            id="gunicorn-without-murder-workers",
        ),
    ],
)
def test_integration_mistake_stops_gunicorn_with_one_line(
    gunicorn, config: str, env: dict[str, str], line: str
) -> None:
    import gunicorn as gunicorn_package

    server = gunicorn(config=config, env=env, hooks=False)
    assert _refusal(server) == line.format(version=gunicorn_package.__version__)


def test_install_never_called_stops_the_start_with_one_line(gunicorn) -> None:
    """No gunicorn-zdt code in the master: the app's probes stop the first worker's boot
    (Gunicorn's exit code 3, "Worker failed to boot"), one line for the pod, no traceback."""
    server = gunicorn(config="workers = 2\n", hooks=False).start(wait_ready=False)
    code = server.wait_exit(30)
    log = server.log()
    assert code == 3, log
    assert [line for line in log.splitlines() if line.startswith("Error:")] == [
        f"Error: {NOT_INSTALLED}"
    ], log
    assert "Traceback" not in log, log


def test_probes_outside_gunicorn_need_no_install() -> None:
    """flask run, tests, another server: the guard stays out of the way."""
    from flask import Flask

    from gunicorn_zdt.probes import Probes

    app = Flask("plain")
    Probes(app)
    assert app.test_client().get("/healthz/live").status_code == 200


def test_hook_defined_above_the_star_import_is_kept_and_runs(gunicorn) -> None:
    """The star import no longer exports our hooks, so it cannot replace the user's."""
    server = gunicorn(
        config=(
            "def post_fork(server, worker):\n"
            "    server.log.info('user post_fork ran in %s', worker.pid)\n"
            "from gunicorn_zdt.conf import *  # noqa\n"
            "workers = 2\n"
            "install(globals())\n"
        ),
        hooks=False,
    ).start()
    server.wait_for_log(r"user post_fork ran in \d+", count=2)
    assert server.get("/healthz/ready").status == 200


def test_gunicorns_pre_request_debug_line_is_kept(gunicorn) -> None:
    """With no pre_request of the user's, Gunicorn's own (a debug line per request) still runs."""
    server = gunicorn(config='loglevel = "debug"\n').start()
    assert server.get("/healthz/live?from=test").status == 200
    server.wait_for_log(r"\[DEBUG\] GET /healthz/live\n")


def test_users_pre_request_runs_instead_of_gunicorns_default(gunicorn) -> None:
    """A user's pre_request, chained through ours, replaces Gunicorn's debug line as it would."""
    server = gunicorn(
        config=(
            'loglevel = "debug"\n'
            "def pre_request(worker, req):\n"
            "    worker.log.info('user pre_request %s', req.path)\n"
        ),
    ).start()
    assert server.get("/healthz/live").status == 200
    server.wait_for_log(r"user pre_request /healthz/live")
    assert not re.search(r"\[DEBUG\] GET /healthz/live\n", server.log()), server.log()
