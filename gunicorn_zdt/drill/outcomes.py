"""What one request of the rehearsal came to: its record and its one failure class.

Shared by the request load (``load.py``) and the event-stream clients (``streams.py``), and
read by the report. The classes are explained in ``load.py``'s docstring.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = ["FAILURE_CLASSES", "NoResponse", "Record", "classify"]

FAILURE_CLASSES = (
    "refused",
    "reset",
    "closed",
    "timeout",
    "5xx",
    "keepalive_race",
    "stream_reset",
    "stream_cut",
    "stream_timeout",
    "other",
)


class NoResponse(Exception):
    """The server closed the connection before a complete response."""


def classify(
    exc: BaseException, *, reused: bool, idempotent: bool, got_bytes: bool, refused: bool
) -> str:
    """The one failure class of a request that raised ``exc`` (see the module docstring)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if reused and idempotent and not got_bytes:
        return "keepalive_race"
    if isinstance(exc, ConnectionRefusedError) or refused:
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, NoResponse):
        return "closed"
    return "other"


@dataclass(frozen=True)
class Record:
    """One request: start time (rehearsal seconds), duration and outcome."""

    t: float
    seconds: float
    client: str
    method: str
    status: int  # 0 when there was no response
    failure: str | None  # a FAILURE_CLASSES member, None for success
    reused: bool
    detail: str = ""

    @property
    def seen_at(self) -> float:
        """When the outcome was known: a failure belongs here on the time axis."""
        return self.t + self.seconds
