"""A Gunicorn config without gunicorn-zdt's hooks."""

bind = "0.0.0.0:8080"
timeout = 20
graceful_timeout = 20
