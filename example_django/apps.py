"""Registers the example's readiness check: Django's own database connection."""

from django.apps import AppConfig


class ExampleConfig(AppConfig):
    name = "example_django"

    def ready(self) -> None:
        from gunicorn_zdt.django import django_db_ping
        from gunicorn_zdt.health import probes

        probes.add_check("database", django_db_ping())
