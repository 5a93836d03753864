"""Traffic with idle gaps through a proxy: what makes upstream keep-alive connections race.

A pooling proxy keeps its connections to the pods open between requests. Whether one of them
is closed by the app at the moment the proxy reuses it depends on how long it sat idle, so
the clients here pause between requests for gaps drawn from ``gap_windows`` (one window
picked at random, then a gap uniformly inside it; chosen to straddle the idle timeouts in
play). Each client alternates a GET and a POST that writes a
unique id (``POST /items``, the example app); a POST answered 201 is an acknowledged write
that must be in the database afterwards. No retries: every failure is counted as the
client saw it. Stdlib only.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field

__all__ = ["GapTraffic", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    at: float  # monotonic seconds
    method: str
    status: int  # 0: no HTTP answer (reset, refused, timeout)
    error: str = ""
    item_id: str = ""

    @property
    def failed(self) -> bool:
        return not (200 <= self.status < 300)


@dataclass
class GapTraffic:
    """``clients`` threads sending to 127.0.0.1:``port``, one fresh connection per request."""

    port: int
    clients: int = 4
    gap_windows: tuple[tuple[float, float], ...] = ((0.5, 2.5),)
    seed: int = 23
    prefix: str = "gap"
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True, name=f"gap-{i}")
            for i in range(self.clients)
        ]

    def start(self) -> GapTraffic:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        return self.outcomes

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.failed]

    def acknowledged_ids(self) -> list[str]:
        with self._lock:
            return [o.item_id for o in self.outcomes if o.method == "POST" and o.status == 201]

    def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        post = index % 2 == 1
        # Start spread out, so the clients do not move in lockstep.
        if self._stop.wait(rng.uniform(0, max(hi for _, hi in self.gap_windows))):
            return
        while not self._stop.is_set():
            post = not post
            self._record(self._one(post))
            lo, hi = rng.choice(self.gap_windows)
            self._stop.wait(rng.uniform(lo, hi))

    def _one(self, post: bool) -> Outcome:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        item_id = f"{self.prefix}-{next(self._ids)}" if post else ""
        method = "POST" if post else "GET"
        try:
            if post:
                body = json.dumps({"id": item_id}).encode()
                conn.request(method, "/items", body, {"Content-Type": "application/json"})
            else:
                conn.request(method, "/work?ms=0")
            resp = conn.getresponse()
            resp.read()
            return Outcome(time.monotonic(), method, resp.status, item_id=item_id)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(time.monotonic(), method, 0, type(exc).__name__, item_id)
        finally:
            conn.close()

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
