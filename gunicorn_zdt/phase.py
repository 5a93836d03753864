"""``from gunicorn_zdt.phase import wait_stopping``: the documented path of the phase API.

The same module as :mod:`gunicorn_zdt.runtime.phase` (one object, so state set by the hooks
is what application code reads): end long-lived responses when the pod stops.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("gunicorn_zdt.runtime.phase")
