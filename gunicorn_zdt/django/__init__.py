"""Django: probes on the app's port, and a check on Django's database connections.

settings.py::

    MIDDLEWARE = [
        "gunicorn_zdt.django.ProbesMiddleware",  # first: probes skip the rest
        ...
    ]

an AppConfig's ``ready()``::

    from gunicorn_zdt.django import django_db_ping
    from gunicorn_zdt.health import probes
    probes.add_check("database", django_db_ping())

The drain needs nothing here: ``install(globals())`` in the Gunicorn config does it.

* :mod:`.middleware` - :class:`ProbesMiddleware`: answers the probes from
  :data:`gunicorn_zdt.health.probes` before any other middleware.
* :mod:`.db` - :func:`django_db_ping`: a database check on one reused, never leaked
  connection per worker.
"""

from .db import django_db_ping
from .middleware import ProbesMiddleware

__all__ = ["ProbesMiddleware", "django_db_ping"]
