"""WSGI entry point: ``gunicorn -c example_django/gunicorn.conf.py example_django.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_django.settings")
application = get_wsgi_application()
