"""Moved to :mod:`gunicorn_zdt.runtime.metrics` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import metrics as _moved

sys.modules[__name__] = _moved
