"""Moved to :mod:`gunicorn_zdt.core.drain` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.core import drain as _moved

sys.modules[__name__] = _moved
