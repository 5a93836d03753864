"""Moved to :mod:`gunicorn_zdt.runtime.surface` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import surface as _moved

sys.modules[__name__] = _moved
