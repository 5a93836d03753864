"""WSGI entry point: ``gunicorn -c example_app/gunicorn.conf.py example_app.wsgi:app``."""

from example_app.app import create_app

app = create_app()
