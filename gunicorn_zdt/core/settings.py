"""Every gunicorn-zdt setting, declared once.

The Gunicorn hooks, the Flask extension, the ``gunicorn-zdt`` CLI and the
configuration reference in the README all read this table, so a setting's name,
default and meaning cannot drift between them. Stdlib only.

Each setting is read from the environment variable of the same name (``ZDT_...``);
Flask-side settings are also read from ``app.config`` under that name.
Precedence: environment > explicit argument (``install(...)``/``app.config``) > default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A setting has a value we cannot use; the message names the setting and the fix."""


#: No duration we read may exceed this without a grace period to check it against: a typo
#: such as ZDT_DRAIN_SECONDS=1e9 would otherwise drain until the kubelet's SIGKILL.
MAX_SECONDS = 3600.0


def _seconds(
    name: str,
    raw: object,
    *,
    allow_none: bool = False,
    positive: bool = False,
    maximum: float = MAX_SECONDS,
) -> float | None:
    example = f"e.g. {name}=5"
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if allow_none:
            return None
        raise SettingError(f"{name} is empty; set it to a number of seconds, {example}")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingError(
            f"{name}={raw!r} is not a number; set it to a number of seconds, {example}"
        ) from None
    if math.isnan(value) or math.isinf(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise SettingError(f"{name}={raw!r} must be a finite number of seconds {bound}; {example}")
    if value > maximum:
        raise SettingError(
            f"{name}={raw!r} is over the limit of {maximum:g} s; use a number of seconds "
            f"<= {maximum:g}, {example}"
        )
    return value


def _optional_seconds(name: str, raw: object) -> float | None:
    return _seconds(name, raw, allow_none=True)


def _grace_seconds(name: str, raw: object) -> float | None:
    """terminationGracePeriodSeconds may be long (a day), never unbounded."""
    return _seconds(name, raw, allow_none=True, maximum=86400.0)


def _positive_seconds(name: str, raw: object) -> float | None:
    return _seconds(name, raw, positive=True, maximum=60.0)


def _path(name: str, raw: object) -> str:
    value = str(raw).strip()
    if not value.startswith("/") or " " in value or "?" in value:
        raise SettingError(f"{name}={raw!r} must be a URL path starting with '/', e.g. /healthz")
    return value.rstrip("/") or "/"


def _attempts(name: str, raw: object) -> int:
    """A whole number of attempts from 1 (no hysteresis) to 5."""
    text = str(raw).strip()
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise SettingError(f"{name}={raw!r} must be a whole number from 1 to 5; e.g. {name}=2")
    return int(text)


def _flag(name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean; use true or false")


def _paths(name: str, raw: object) -> tuple[str, ...]:
    """Comma-separated URL paths (each starting with '/'); empty: none."""
    if isinstance(raw, (list, tuple)):
        items = [str(i).strip() for i in raw]
    else:
        items = [i.strip() for i in str(raw or "").split(",")]
    paths = tuple(i for i in items if i)
    bad = [p for p in paths if not p.startswith("/") or " " in p]
    if bad:
        raise SettingError(
            f"{name}={raw!r}: {bad[0]!r} is not a URL path; use comma-separated paths "
            f"starting with '/', e.g. {name}=/lb-health,/ping"
        )
    return paths


def _bind(name: str, raw: object) -> tuple[str, int] | None:
    """``PORT`` or ``HOST:PORT`` (``[::]:PORT`` for IPv6); empty: off."""
    text = "" if raw is None else str(raw).strip()
    if text in {"", "0", "off", "false"}:
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "0.0.0.0"
    fix = f"use PORT or HOST:PORT, e.g. {name}=0.0.0.0:8081 (empty or off: no probe listener)"
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host or " " in host:
        raise SettingError(f"{name}={raw!r} is not an address; {fix}")
    return host, int(port)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str, object], Any]
    side: str  # "gunicorn" (the hooks, in the master), "flask" (Probes), or "both"
    doc: str

    def resolve(self, explicit: object = None, environ: Mapping[str, str] | None = None) -> Any:
        """Environment beats an explicit value, which beats the default."""
        env = os.environ if environ is None else environ
        if self.name in env:
            return self.parse(self.name, env[self.name])
        if explicit is not None:
            return self.parse(self.name, explicit)
        return self.default


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ZDT_DRAIN_SECONDS",
        5.0,
        _seconds,
        "gunicorn",
        "Minimum drain D. After SIGTERM every worker answers 503 on readiness and keeps "
        "serving (and accepting new connections), closing each keep-alive connection after "
        "its response, for at least this long, then until traffic stops arriving "
        "(ZDT_DRAIN_QUIET_SECONDS) or ZDT_DRAIN_MAX_SECONDS; then Gunicorn's graceful stop "
        "begins. A pod that gets no traffic waits exactly this long.",
    ),
    Setting(
        "ZDT_DRAIN_QUIET_SECONDS",
        2.0,
        _seconds,
        "gunicorn",
        "Once the minimum drain (ZDT_DRAIN_SECONDS) has passed, the drain ends as soon as no "
        "request has arrived on a new connection for this long (probes excluded) and the "
        "listen backlog is empty: traffic that still arrives extends the drain.",
    ),
    Setting(
        "ZDT_DRAIN_MAX_SECONDS",
        None,
        _optional_seconds,
        "gunicorn",
        "The drain never runs longer than this, traffic or not. Unset: chosen at start-up "
        "and logged. With ZDT_GRACE_PERIOD_SECONDS, all the grace period leaves once preStop, "
        "the 2 s margin and a graceful_timeout covering Gunicorn's timeout are counted (the "
        "config's graceful_timeout, if it sets one), so the derived graceful_timeout never "
        "drops below timeout; where that is less than ZDT_DRAIN_SECONDS, the drain is fixed "
        "at it. Without a grace period: 15. ZDT_DRAIN_SECONDS=0: 0 (no drain). The timing budget (grace period, derived "
        "graceful_timeout, `gunicorn-zdt check`) counts this maximum.",
    ),
    Setting(
        "ZDT_HEALTH_CHECK_PATHS",
        (),
        _paths,
        "gunicorn",
        "Comma-separated paths of a load balancer's own health checks (the probe paths under "
        "ZDT_PROBE_PREFIX are always excluded): requests to them are not evidence of traffic "
        "and never extend the drain.",
    ),
    Setting(
        "ZDT_REPORT_JSON",
        False,
        _flag,
        "gunicorn",
        "Also log the termination report as one JSON object (for log pipelines).",
    ),
    Setting(
        "ZDT_GRACE_PERIOD_SECONDS",
        None,
        _grace_seconds,
        "gunicorn",
        "The pod's terminationGracePeriodSeconds. When set and graceful_timeout is not, "
        "graceful_timeout is derived as grace - preStop - drain - margin; when both are set "
        "and do not fit, Gunicorn refuses to start.",
    ),
    Setting(
        "ZDT_PRESTOP_SECONDS",
        0.0,
        _seconds,
        "gunicorn",
        "The pod's preStop sleep P (lifecycle.preStop.sleep.seconds), which runs before "
        "SIGTERM and counts against the grace period. 0 when there is none.",
    ),
    Setting(
        "ZDT_MIN_PROPAGATION_SECONDS",
        3.0,
        _seconds,
        "gunicorn",
        "The slowest endpoint-removal propagation expected in front of the pod; "
        "preStop + drain must cover it (checked by `gunicorn-zdt check`).",
    ),
    Setting(
        "ZDT_PROBE_BIND",
        None,
        _bind,
        "gunicorn",
        "Address (PORT or HOST:PORT) of the probe listener: a small process forked by the "
        "master that answers PREFIX/live, PREFIX/ready and PREFIX/startup from shared memory "
        "(heartbeats, drain phase, the workers' last check results), so probes answer in "
        "milliseconds even when every worker thread is busy. Unset: the config's "
        "`install(globals(), probe_bind=...)`, which the ready-made config and the example "
        "pass (0.0.0.0:8081); without one, no listener. off: none, whatever the config says.",
    ),
    Setting(
        "ZDT_HEARTBEAT_TIMEOUT_SECONDS",
        None,
        _optional_seconds,
        "gunicorn",
        "Probe listener: liveness fails (503) when the master's loop, or every worker, has "
        "not reported a heartbeat for this long. Unset: Gunicorn's `timeout` (30 s when "
        "it is 0), past which Gunicorn itself treats a worker as hung. With sync workers it "
        "must exceed timeout/2: an idle sync worker reports only that often.",
    ),
    Setting(
        "ZDT_PROBE_PREFIX",
        "/healthz",
        _path,
        "both",
        "URL prefix of the probe endpoints: PREFIX/live, PREFIX/ready (and PREFIX/ready/NAME "
        "for one check), PREFIX/startup.",
    ),
    Setting(
        "ZDT_CHECK_TIMEOUT_SECONDS",
        1.0,
        _positive_seconds,
        "flask",
        "Default timeout of one readiness/startup check; a check still running then counts "
        "as failed. Keep it below the probe's timeoutSeconds.",
    ),
    Setting(
        "ZDT_CHECK_CACHE_SECONDS",
        1.0,
        _seconds,
        "flask",
        "How long a check result is reused by later probes in the same worker (the drain "
        "flip is never cached). 0 disables the cache.",
    ),
    Setting(
        "ZDT_CHECK_FAILURE_THRESHOLD",
        2,
        _attempts,
        "flask",
        "Hysteresis: a check fails only after this many consecutive failed attempts; the "
        "confirming attempts run at once, within the check's timeout, so an outage is still "
        "reported within the timeout plus one cache period. A timeout fails at once; one "
        "pass clears it. 1 turns hysteresis off.",
    ),
    Setting(
        "ZDT_REQUIRE_INSTALL",
        True,
        _flag,
        "flask",
        "Under Gunicorn, an app with probes whose config never called install(globals()) "
        "stops the start with one line (the drain would be off). false: it starts, and the "
        "first probe logs a warning (e.g. to compare with plain Gunicorn).",
    ),
    Setting(
        "ZDT_EXPOSE_REASONS",
        False,
        _flag,
        "flask",
        "Show failure reasons in probe bodies. Off by default: reasons go to the log only.",
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def resolve(name: str, explicit: object = None, environ: Mapping[str, str] | None = None) -> Any:
    """The effective value of setting ``name`` (environment > explicit > default)."""
    return BY_NAME[name].resolve(explicit, environ)


def validate_environment(environ: Mapping[str, str] | None = None) -> None:
    """Parse every ``ZDT_*`` setting set in the environment; the first bad one raises.

    The hooks call it in the master before any worker starts, so a bad Flask-side value
    stops Gunicorn with one line instead of failing in every worker.
    """
    env = os.environ if environ is None else environ
    for setting in SETTINGS:
        if setting.name in env:
            setting.parse(setting.name, env[setting.name])


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def reference_markdown() -> str:
    """The configuration table used in the README (kept in sync by a test)."""
    rows = ["| setting | default | read by | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = "unset" if s.default is None else f"`{_show(s.default)}`"
        rows.append(f"| `{s.name}` | {default} | {s.side} | {s.doc} |")
    return "\n".join(rows)
