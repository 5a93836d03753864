"""Moved to :mod:`gunicorn_zdt.runtime.stacks` (TEMPORARY alias while branches merge)."""

import sys

from gunicorn_zdt.runtime import stacks as _moved

sys.modules[__name__] = _moved
