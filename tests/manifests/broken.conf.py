"""A Gunicorn config that fails to import."""

import gunicorn_zdt_no_such_module  # noqa: F401
