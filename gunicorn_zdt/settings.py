"""Moved to :mod:`gunicorn_zdt.core.settings` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.core import settings as _moved

sys.modules[__name__] = _moved
