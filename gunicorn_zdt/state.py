"""Moved to :mod:`gunicorn_zdt.runtime.state` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import state as _moved

sys.modules[__name__] = _moved
