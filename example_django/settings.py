"""Settings of the Django example: one app, SQLite from DATABASE_URL, probes first.

Only what the example needs; a real project keeps its own settings and adds the one
MIDDLEWARE line and the check in an AppConfig (see apps.py).
"""

import os
import tempfile
from pathlib import Path

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "example_django.urls"
INSTALLED_APPS = ["example_django.apps.ExampleConfig"]
MIDDLEWARE = [
    "gunicorn_zdt.django.ProbesMiddleware",  # first: probes skip every other middleware
    "django.middleware.common.CommonMiddleware",
]


def _sqlite_path() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    return str(Path(tempfile.gettempdir()) / "gunicorn-zdt-django.db")


DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _sqlite_path(),
        # Persistent connections, as most production settings have them: a request (and
        # the readiness check) reuses its thread's connection for up to a minute.
        "CONN_MAX_AGE": 60,
        "OPTIONS": {"timeout": 10, "init_command": "PRAGMA journal_mode=WAL"},
    }
}
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets TZ for the process: keep Gunicorn's log times in UTC
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
