"""Moved to :mod:`gunicorn_zdt.core.plan` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.core import plan as _moved

sys.modules[__name__] = _moved
