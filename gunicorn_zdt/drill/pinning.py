"""Keep-alive connections still reused on a pod after its drain was visible (issue 16).

While a pod drains, its ``pre_request`` hook sets ``req.must_close``: every response then
carries ``Connection: close``, the client's keep-alive connection ends after it, and the
client's next request opens a new connection through the Service, to a pod still in the
endpoints. Without that, an L4 Service (kube-proxy) leaves the connection where it is: the
client keeps sending to the dying pod until the graceful stop cuts it. No request fails
while the drain lasts, so only this count shows it.

What is counted, per connection and pod (a :class:`Use` is one request on one connection):

* the pod's drain was *visible* at ``drain_seen_at``: the kubelet's first readiness answer
  503 after the pod's SIGTERM. That answer was produced after the flip to DRAINING, so any
  request whose client started it at or after that moment reached the worker's
  ``pre_request`` after the flip too, and its response must close the connection;
* a request is **pinned** when the previous request on the same connection started at or
  after ``drain_seen_at``: that previous response should have closed the connection, so a
  correct server gives 0 whatever the timing. The one request in flight at the flip
  (started before the 503 was seen) may legitimately come back keep-alive; the request
  after it is not counted.

Where the connection is measured matters: with an L4 Service (``kube-proxy``,
``health-check``) the client's TCP connection is spliced to one pod connection, so the
client's own connections are the ones that stay pinned (the balancer names their pod).
A proxy that terminates HTTP (``l7``, HAProxy) keeps its own keep-alive connections to the
pods and chooses a pod per request: there the pinning would be between the proxy and the
pod, so the ``l7`` model reports its upstream connections instead; HAProxy's cannot be
seen from here (not measured).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Use", "keepalive_pinning"]

_LISTED = 20


@dataclass(frozen=True)
class Use:
    """One request on one keep-alive connection (times in rehearsal seconds)."""

    connection: int  # the connection's serial number, unique within one rehearsal
    pod: str  # the pod at the other end of it
    t: float  # when the request started (before it was sent)
    server_close: bool  # its response carried ``Connection: close``


#: The summary's counts (None each when the Service hides its connections).
_COUNTS = ("connections_after_sigterm", "closed_by_pod", "pinned_connections", "pinned_requests")


def keepalive_pinning(
    uses: Iterable[Use],
    sigterm_at: Mapping[str, float],
    drain_seen_at: Mapping[str, float],
    *,
    measured_at: str | None,
) -> dict[str, Any]:
    """The pinning summary for the report; ``measured_at`` None: this Service hides it.

    ``connections_after_sigterm``: connections that carried a request started at or after
    their pod's SIGTERM (the measurement saw draining pods at all); ``closed_by_pod``: of
    those, the ones whose pod answered ``Connection: close`` after its SIGTERM;
    ``pinned_connections`` / ``pinned_requests``: see the module docstring (0 when correct).
    """
    if measured_at is None:
        return {"measured_at": None, **dict.fromkeys(_COUNTS), "list": []}
    by_connection: defaultdict[tuple[int, str], list[Use]] = defaultdict(list)
    for use in uses:
        by_connection[use.connection, use.pod].append(use)
    after_sigterm = closed = pinned_requests = 0
    rows = []
    for (connection, pod), conn_uses in sorted(by_connection.items()):
        conn_uses.sort(key=lambda u: u.t)
        term = sigterm_at.get(pod)
        if term is None:
            continue
        late = [u for u in conn_uses if u.t >= term]
        if not late:
            continue
        after_sigterm += 1
        closed += any(u.server_close for u in late)
        seen = drain_seen_at.get(pod)
        if seen is None:
            continue
        pinned = [cur for prev, cur in itertools.pairwise(conn_uses) if prev.t >= seen]
        if not pinned:
            continue
        pinned_requests += len(pinned)
        rows.append(
            {
                "pod": pod,
                "connection": connection,
                "opened_at": conn_uses[0].t,  # its first request
                "drain_seen_at": seen,
                "pinned_requests": len(pinned),
                "first_pinned_at": pinned[0].t,
                "last_pinned_at": pinned[-1].t,
            }
        )
    return {
        "measured_at": measured_at,
        "connections_after_sigterm": after_sigterm,
        "closed_by_pod": closed,
        "pinned_connections": len(rows),
        "pinned_requests": pinned_requests,
        "list": rows[:_LISTED],
    }
