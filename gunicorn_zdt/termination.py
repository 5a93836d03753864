"""Moved to :mod:`gunicorn_zdt.runtime.termination` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import termination as _moved

sys.modules[__name__] = _moved
