"""The framework-neutral probe core and checks, shared by every framework adapter.

    from gunicorn_zdt.health import probes
    probes.add_check("db", my_ping)        # a callable or a coroutine function

* :mod:`.core` - :class:`HealthChecks`: the checks, the started flag, and the one
  readiness/startup decision every adapter (Flask, ASGI, WSGI, Django) answers with;
  ``probes``, the process's instance.
* :mod:`.checks` - the check engine: a timeout without signals, single-flight, cached,
  failure threshold, logged reasons; ``sqlalchemy_ping`` and the SQLite file check.

Framework imports stay out of this package: Django's database check is
:func:`gunicorn_zdt.django.django_db_ping`.
"""

from .core import HealthChecks, probes

__all__ = ["HealthChecks", "probes"]
