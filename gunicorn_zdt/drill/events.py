"""The rehearsal's clock and its event log (thread-safe, monotonic, seconds since start)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    t: float  # seconds since the rehearsal started
    pod: str  # pod name, or "" for rehearsal-wide events
    kind: str  # e.g. "created", "ready", "deleted", "sigterm", "exited", "endpoint-removed"
    detail: str = ""


class EventLog:
    """Every lifecycle event, in the order it happened.

    Not :mod:`gunicorn_zdt.check.timeline` (the termination budget drawn for one pod):
    this is what happened during one rehearsal, on its own clock.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, pod: str, kind: str, detail: str = "") -> Event:
        with self._lock:
            event = Event(round(self.now(), 4), pod, kind, detail)
            self._events.append(event)
            return event

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)
