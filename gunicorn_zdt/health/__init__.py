"""The framework-neutral probe core and checks, shared by every framework adapter.

    from gunicorn_zdt.health import probes
    probes.add_check("db", my_ping)        # a callable or a coroutine function

See :mod:`gunicorn_zdt.health.core`; Django's database check is
:func:`gunicorn_zdt.health.django_db.django_db_ping`.
"""

from .core import HealthChecks, probes

__all__ = ["HealthChecks", "probes"]
