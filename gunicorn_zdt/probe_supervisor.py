"""Moved to :mod:`gunicorn_zdt.runtime.probe_supervisor` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import probe_supervisor as _moved

sys.modules[__name__] = _moved
