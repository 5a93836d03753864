"""gunicorn-zdt: zero-downtime rolling updates for Flask apps served by Gunicorn.

Import what you need from its rooms, so the Gunicorn side stays free of Flask:

* ``gunicorn_zdt.hooks.install(globals())`` in your Gunicorn config (or
  ``gunicorn -c python:gunicorn_zdt.conf``),
* ``gunicorn_zdt.probes.Probes(app)`` and ``gunicorn_zdt.checks.sqlalchemy_ping`` in your app,
* other frameworks: ``gunicorn_zdt.health.probes`` for checks; Django's
  ``gunicorn_zdt.django.ProbesMiddleware``; ASGI apps need nothing (``install`` wraps them in
  ``gunicorn_zdt.asgi.ZdtMiddleware``); any WSGI app ``gunicorn_zdt.wsgi.ZdtWSGIMiddleware``.
"""

__version__ = "0.1.0"
