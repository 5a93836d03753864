"""Moved to :mod:`gunicorn_zdt.core.readiness` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.core import readiness as _moved

sys.modules[__name__] = _moved
