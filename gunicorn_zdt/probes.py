"""Compatibility shim: the Flask extension lives in :mod:`gunicorn_zdt.flask.extension`.

``from gunicorn_zdt.probes import Probes`` keeps working (the README's import).
"""

from .flask.extension import EXTENSION_KEY, Probes, StartupMode

__all__ = ["EXTENSION_KEY", "Probes", "StartupMode"]
