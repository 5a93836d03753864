"""Moved to :mod:`gunicorn_zdt.core.budget` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.core import budget as _moved

sys.modules[__name__] = _moved
