"""What runs inside Gunicorn (the master, its workers and the probe listener process).

Code here lives under fork and signal constraints: nothing blocks the master's loop,
nothing on the request path logs, locks across processes or does I/O. It imports only
:mod:`gunicorn_zdt.core` (and Gunicorn), never the checker or the drill.

* :mod:`.install` - ``install(globals())``: the Gunicorn hooks and the drain's take-over of
  SIGTERM; :mod:`.surface` - the parts of Gunicorn we rely on, checked at start-up.
* :mod:`.termination` - the master's termination sequence, one object: the transitions
  Gunicorn calls, the drain, the hand-over, late connections, the report;
  :mod:`.backlog` - the listening sockets' accept queue.
* :mod:`.context` - the one runtime object of a master (shared state, slots, listener,
  the readiness publisher); :mod:`.state` - the shared-memory layout.
* :mod:`.phase` - the phase API for application code (``stopping``, ``wait_stopping``).
* :mod:`.guard` - an app with our probes loaded by Gunicorn without ``install()``: refused.
* :mod:`.quiet_stop` - workers take the listening socket shut under them as the end of
  accepting, not an error; :mod:`.idle_close` - a stopping gevent worker closes its idle
  keep-alive connections.
* :mod:`.stacks` - stack dumps of what was still running at ``graceful_timeout``.
* :mod:`.probe_server`, :mod:`.probe_supervisor` - the probe listener and its supervisor.
* :mod:`.metrics` - the Prometheus collector the probe listener serves at ``/metrics``.

The public API adapters and applications may use is exported here (the phase function
itself is ``gunicorn_zdt.phase.phase``: a name here would shadow the module).
"""

from .context import Runtime, current, pod_state
from .guard import refuse_unless_installed
from .install import install, integration_problem
from .phase import current_request, stopping, wait_stopping, wait_stopping_async

__all__ = [
    "Runtime",
    "current",
    "current_request",
    "install",
    "integration_problem",
    "pod_state",
    "refuse_unless_installed",
    "stopping",
    "wait_stopping",
    "wait_stopping_async",
]
