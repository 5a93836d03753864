"""The Flask adapter: ``Probes(app)`` (see :mod:`gunicorn_zdt.flask.extension`)."""

from .extension import Probes

__all__ = ["Probes"]
