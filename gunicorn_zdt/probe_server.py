"""Moved to :mod:`gunicorn_zdt.runtime.probe_server` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import probe_server as _moved

sys.modules[__name__] = _moved
