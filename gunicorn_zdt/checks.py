"""Compatibility shim: the check engine lives in :mod:`gunicorn_zdt.health.checks`.

``from gunicorn_zdt.checks import sqlalchemy_ping`` keeps working (the README's import).
"""

from .health.checks import (
    DEFAULT_FAILURE_THRESHOLD,
    LOG_EVERY_SECONDS,
    MAX_RUNS_IN_FLIGHT,
    SQLITE_HEADER,
    Check,
    CheckFunc,
    CheckRegistry,
    CheckResult,
    check_sqlite_file,
    sqlalchemy_ping,
    sqlite_file,
)

__all__ = [
    "DEFAULT_FAILURE_THRESHOLD",
    "LOG_EVERY_SECONDS",
    "MAX_RUNS_IN_FLIGHT",
    "SQLITE_HEADER",
    "Check",
    "CheckFunc",
    "CheckRegistry",
    "CheckResult",
    "check_sqlite_file",
    "sqlalchemy_ping",
    "sqlite_file",
]
