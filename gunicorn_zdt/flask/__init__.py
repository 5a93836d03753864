"""The Flask adapter: ``Probes(app)``, the probe endpoints as a Flask extension.

* :mod:`.extension` - :class:`Probes` (``init_app``, ``add_check``, ``mark_started``,
  ``ZDT_*`` app config, state in ``app.extensions["zdt"]``): Flask's routing and config
  around :class:`gunicorn_zdt.health.core.HealthChecks`, which decides.
"""

from .extension import Probes

__all__ = ["Probes"]
