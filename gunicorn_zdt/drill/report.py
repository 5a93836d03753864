"""The rehearsal's verdict: a dict (written as JSON), a text report and an SVG picture."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..core.report import last_report, render_text
from .events import Event
from .outcomes import FAILURE_CLASSES, Record
from .pods import PodProcess

_CLASS_COLOURS = {
    "refused": "#d62728",
    "reset": "#ff7f0e",
    "closed": "#8c564b",
    "timeout": "#9467bd",
    "5xx": "#e377c2",
    "keepalive_race": "#bcbd22",
    "stream_reset": "#17becf",
    "stream_cut": "#393b79",
    "stream_timeout": "#637939",
    "other": "#7f7f7f",
}


def pod_row(pod: PodProcess) -> dict[str, Any]:
    """One line of the termination table (times in rehearsal seconds)."""
    term_to_exit = None
    if pod.sigterm_at is not None and pod.exited_at is not None:
        term_to_exit = round(pod.exited_at - pod.sigterm_at, 3)
    report = termination_report(pod.log_path)
    return {
        "pod": pod.name,
        "revision": pod.revision,
        "port": pod.port,
        "probe_ports": pod.probe_ports,  # probes sent elsewhere than ``port`` (the listener)
        "created_at": pod.created_at,
        "deleted_at": pod.deleted_at,
        "readiness_failing_at": pod.readiness_failed_at,
        "readiness_failing_status": pod.readiness_failing_status,  # 503: the drain's flip
        "drain_seen_at": pod.drain_seen_at,  # first readiness 503 after SIGTERM (pinning.py)
        "sigterm_at": pod.sigterm_at,
        "exited_at": pod.exited_at,
        "exit_code": pod.exit_code,
        "sigkilled": pod.sigkilled,
        "sigterm_to_exit_seconds": term_to_exit,
        "restarts": pod.restarts,
        "stopped_by": "rollout" if pod.deleted_at is not None else "teardown",
        "termination_report": None if report is None else render_text(report),  # for people
        "termination_report_data": report,  # the JSON report's fields (core/report.py)
    }


def termination_report(log: Path) -> dict[str, Any] | None:
    """The pod's own account of its termination: the JSON report gunicorn-zdt logs at exit
    (:mod:`gunicorn_zdt.core.report`; the drill runs every pod with ``ZDT_REPORT_JSON``), the
    last one when the pod restarted; None without one."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    return last_report(text.splitlines())


def summarize(
    *,
    settings: dict[str, Any],
    records: list[Record],
    acked: int,
    lost: list[str],
    unverified: list[str],
    pods: list[PodProcess],
    events: list[Event],
    service_stats: dict[str, Any],
    duration_seconds: float,
    streams: dict[str, Any] | None = None,
    pinning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    failures = [r for r in records if r.failure]
    pinned = bool(pinning and pinning["pinned_requests"])
    by_class = Counter(r.failure for r in failures)
    return {
        "passed": not failures and not lost and not unverified and not pinned,
        "settings": settings,
        "duration_seconds": round(duration_seconds, 3),
        "requests": len(records),
        "succeeded": len(records) - len(failures),
        "failures": len(failures),
        "failures_by_class": {c: by_class.get(c, 0) for c in FAILURE_CLASSES},
        "by_client": _by_client(records),
        "writes_acknowledged": acked,
        "lost_writes": len(lost),
        "lost_write_ids": lost[:50],
        "unverified_writes": len(unverified),
        "streams": streams,  # streams.summarize_streams; None without stream clients
        "keepalive_pinning": pinning,  # pinning.keepalive_pinning; None: not computed
        "pods": [pod_row(p) for p in pods],
        "events": [e.__dict__ for e in events],
        "failure_list": _failure_rows(failures[:2000], events),
        "service": service_stats,
        "timeseries": _bins(records, duration_seconds),
    }


def _failure_rows(failures: list[Record], events: list[Event]) -> list[dict[str, Any]]:
    """One row per failed request, with the pod deletion it followed."""
    deletions = sorted((e.t, e.pod) for e in events if e.kind == "deleted")
    failure_rows = []
    for r in failures:
        # A failure belongs to the deletion before the moment it was seen, not before the request
        # started: a connection queued just before a deletion is reset just after it.
        failed_at = r.seen_at
        before = [(t, p) for t, p in deletions if t <= failed_at]
        last = before[-1] if before else None
        failure_rows.append(
            {
                "t": r.t,
                "failed_at": round(failed_at, 4),
                "client": r.client,
                "method": r.method,
                "class": r.failure,
                "status": r.status,
                "reused_connection": r.reused,
                "detail": r.detail,
                "after_deletion_of": last[1] if last else None,
                "seconds_after_deletion": round(failed_at - last[0], 3) if last else None,
            }
        )
    return failure_rows


def _by_client(records: list[Record]) -> dict[str, dict[str, int]]:
    by_client: dict[str, dict[str, int]] = {}
    for r in records:
        row = by_client.setdefault(r.client, {"requests": 0, "failures": 0})
        row["requests"] += 1
        row["failures"] += bool(r.failure)
    return by_client


def _nginx_lines(stats: dict[str, int] | None) -> list[str]:
    """What nginx's access log says (a failed upstream attempt on a GET is retried there and
    never reaches the client: counted here, not as a failure)."""
    if stats is None:
        return []
    return [
        f"nginx upstream attempts failed: {stats['answered_5xx']} answered 5xx, "
        f"{stats['retried']} retried on another pod (from its access log)"
    ]


def _bins(records: list[Record], duration: float) -> dict[str, Any]:
    width = max(0.1, round(max(duration, 1.0) / 150, 2))
    n = int(duration / width) + 1
    ok = [0] * n
    failed: dict[str, list[int]] = {}
    for r in records:
        # Successes count when they start, failures when they are seen (as in the failure list).
        i = min(n - 1, max(0, int((r.seen_at if r.failure else r.t) / width)))
        if r.failure:
            failed.setdefault(r.failure, [0] * n)[i] += 1
        else:
            ok[i] += 1
    return {"bin_seconds": width, "ok": ok, "failed": failed}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _listener_line(probes: list[str] | None) -> list[str]:
    if probes is None:
        return []
    aimed = ", ".join(probes) or "no probe"
    return [f"probe listener (ZDT_PROBE_BIND): a port of its own per pod; {aimed} probed there"]


def _stream_lines(streams: dict[str, Any] | None) -> list[str]:
    if not streams:
        return []
    s = streams
    to_other = (
        f", next event from another pod {s['reconnects_to_another_pod']}"
        if s["pods_known"]
        else " (this service model cannot tell which pod served a stream)"
    )
    lines = [
        f"streams ({s['clients']} clients on {s['path']}, each stream one request above): "
        f"opened {s['opened']}, ended cleanly with the reconnect event "
        f"{s['ended_with_reconnect']}, failed {s['failed']}, still open at the end "
        f"{s['open_at_end']}; reconnects {s['reconnects']}, with a next event "
        f"{s['reconnects_with_event']}{to_other}; {s['events']} events"
    ]
    for row in s["list"][:20]:
        line = (
            f"  {row['client']:<9} {row['pod'] or '?':<7} t={row['opened_at']:.2f}-"
            f"{row['ended_at']:.2f} events {row['events']:>3} {row['outcome']:<14}"
            + (f" reconnect (before: {row['previous_pod'] or '?'})" if row["reconnect"] else "")
            + ("" if row["outcome"] in ("reconnect", "open_at_end") else f"  {row['detail'][:80]}")
        )
        lines.append(line.rstrip())
    return lines


_MEASURED_AT = {
    "client": "the clients' connections (an L4 Service splices each to one pod)",
    "l7-upstream": "the l7 proxy's connections to the pods",
}


def _pinning_lines(pinning: dict[str, Any] | None) -> list[str]:
    if not pinning:
        return []
    if pinning["measured_at"] is None:
        return [
            "keep-alive pinning: not measured (this proxy's connections to the pods are not "
            "visible to the drill)"
        ]
    p = pinning
    lines = [
        f"keep-alive pinning, on {_MEASURED_AT.get(p['measured_at'], p['measured_at'])}: "
        f"{p['connections_after_sigterm']} used on a pod after its SIGTERM, "
        f"{p['closed_by_pod']} closed by its Connection: close; still reused after the pod's "
        f"drain was visible (readiness 503): {p['pinned_connections']} connections, "
        f"{p['pinned_requests']} requests"
    ]
    for row in p["list"][:10]:
        lines.append(
            f"  {row['pod']:<7} connection {row['connection']:<5} opened t={row['opened_at']:.2f}"
            f", drain seen t={row['drain_seen_at']:.2f}: {row['pinned_requests']} more requests "
            f"t={row['first_pinned_at']:.2f}-{row['last_pinned_at']:.2f}"
        )
    return lines


def text_report(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"gunicorn-zdt drill: {s['service']} service, {s['rollouts']} rolling update(s) of "
        f"{s['replicas']} replicas (maxSurge {s['max_surge']}, maxUnavailable "
        f"{s['max_unavailable']})",
        f"time scale {s['time_scale']:g}: probe periods, minReadySeconds, preStop, grace period, "
        f"ZDT_*_SECONDS, propagation and health-check interval x{s['time_scale']:g} "
        f"(grace {s['grace_period_seconds']:g} s, preStop {s['prestop']}, propagation "
        f"{s['propagation_seconds'][0]:g}-{s['propagation_seconds'][1]:g} s)",
        f"pod command: {s['command']}",
        *_listener_line(s.get("probe_listener")),
        "",
        f"requests {result['requests']}, succeeded {result['succeeded']}, "
        f"failed {result['failures']} in {result['duration_seconds']:.1f} s",
        "failures by class: "
        + ", ".join(f"{c} {n}" for c, n in result["failures_by_class"].items()),
        f"writes acknowledged {result['writes_acknowledged']}, lost {result['lost_writes']}, "
        f"unverified {result['unverified_writes']}",
        *_stream_lines(result.get("streams")),
        *_pinning_lines(result.get("keepalive_pinning")),
        *_nginx_lines(result.get("service", {}).get("nginx")),
    ]
    lines += _failure_lines(result["failure_list"])
    lines += _pod_lines(result["pods"])
    verdict = "PASSED: zero failures, zero lost writes" if result["passed"] else "FAILED"
    lines += ["", verdict]
    return "\n".join(lines)


def _failure_lines(failure_list: list[dict[str, Any]]) -> list[str]:
    """The first failures, each placed after the pod deletion before it, and a histogram."""
    lines: list[str] = []
    if failure_list:
        lines += ["", "failures after pod deletions (first 20):"]
        for f in failure_list[:20]:
            where = (
                f"+{f['seconds_after_deletion']:.2f} s after {f['after_deletion_of']} deleted"
                if f["after_deletion_of"]
                else "before any deletion"
            )
            lines.append(
                f"  t={f['failed_at']:.2f} {f['class']:<14} {f['method']:<4} {f['client']:<16} {where}"
                f"  {f['detail'][:80]}"
            )
        hist = Counter(
            int(f["seconds_after_deletion"])
            for f in failure_list
            if f["seconds_after_deletion"] is not None
        )
        lines.append(
            "  seconds after deletion -> failures: "
            + ", ".join(f"{k}-{k + 1}s: {hist[k]}" for k in sorted(hist))
        )
    return lines


def _pod_lines(pods: list[dict[str, Any]]) -> list[str]:
    """The pod termination table, each pod's own termination report under its row."""
    lines = [
        "",
        "pod termination (seconds since start):",
        f"  {'pod':<8} {'rev':>3} {'deleted':>8} {'503 at':>8} {'SIGTERM':>8} {'exited':>8} "
        f"{'exit':>5} {'SIGKILL':>7} {'TERM->exit':>10} {'restarts':>8}",
    ]
    for p in pods:
        lines.append(
            f"  {p['pod']:<8} {p['revision']:>3} {_fmt(p['deleted_at']):>8} "
            f"{_fmt(p['readiness_failing_at']):>8} {_fmt(p['sigterm_at']):>8} "
            f"{_fmt(p['exited_at']):>8} {p['exit_code']!s:>5} "
            f"{'yes' if p['sigkilled'] else 'no':>7} {_fmt(p['sigterm_to_exit_seconds']):>10} "
            f"{p['restarts']:>8}" + ("  (teardown)" if p["stopped_by"] == "teardown" else "")
        )
        if p.get("termination_report"):
            lines.append(f"           its report: {p['termination_report']}")
    return lines


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")


def svg_report(result: dict[str, Any], title: str | None = None) -> str:
    """Requests per time bin (failures stacked by class) above one lane per pod."""
    s = result["settings"]
    frame = _Frame(max(result["duration_seconds"], 1.0), len(result["pods"]))
    heading = title or (
        f"{s['service']} service, {s['rollouts']} rollout(s) of {s['replicas']} pods, "
        f"time scale {s['time_scale']:g}: {result['requests']} requests, "
        f"{result['failures']} failed, {result['lost_writes']} lost writes"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{frame.width}" height="{frame.height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{frame.width}" height="{frame.height}" fill="white"/>',
        f'<text x="{frame.left}" y="20" font-size="13">{escape(heading)}</text>',
        *_request_bars(frame, result["timeseries"]),
        *_failure_ticks(frame, result["failure_list"]),
        *_time_axis(frame, result["events"]),
        *_pod_lanes(frame, result["pods"], result["events"]),
        *_legend(frame, result["timeseries"]),
        "</svg>",
    ]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class _Frame:
    """The picture's geometry: the request chart on top, then one lane per pod, the legend."""

    duration: float  # seconds the time axis spans
    lanes: int  # pods
    left: int = 90
    right: int = 20
    top: int = 40
    width: int = 960
    chart_h: int = 150
    lane_h: int = 16

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def base(self) -> int:
        """The chart's zero line."""
        return self.top + self.chart_h

    @property
    def lanes_top(self) -> int:
        return self.base + 40

    @property
    def lanes_bottom(self) -> int:
        return self.lanes_top + self.lane_h * self.lanes

    @property
    def height(self) -> int:
        return self.lanes_bottom + 70

    def x(self, t: float) -> float:
        return self.left + self.plot_w * max(0.0, min(t, self.duration)) / self.duration


def _request_bars(frame: _Frame, ts: dict[str, Any]) -> list[str]:
    """Requests per bin: successes, failures stacked on them by class, and the y axis."""
    left, chart_h, base = frame.left, frame.chart_h, frame.base
    n = len(ts["ok"])
    totals = [ts["ok"][i] + sum(v[i] for v in ts["failed"].values()) for i in range(n)]
    peak = max([*totals, 1])
    bw = frame.plot_w / max(n, 1)
    out = []
    for i in range(n):
        x0 = left + i * bw
        h_ok = chart_h * ts["ok"][i] / peak
        out.append(
            f'<rect x="{x0:.1f}" y="{base - h_ok:.1f}" width="{max(bw - 0.5, 0.5):.1f}" '
            f'height="{h_ok:.1f}" fill="#9ecae1"/>'
        )
        y = base - h_ok
        for cls, values in ts["failed"].items():
            if values[i]:
                h = max(2.0, chart_h * values[i] / peak)
                y -= h
                out.append(
                    f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(bw - 0.5, 0.5):.1f}" '
                    f'height="{h:.1f}" fill="{_CLASS_COLOURS.get(cls, "#000")}"/>'
                )
    out.append(
        f'<line x1="{left}" y1="{base}" x2="{left + frame.plot_w}" y2="{base}" stroke="#333"/>'
    )
    out.append(
        f'<text x="{left - 6}" y="{frame.top + 10}" text-anchor="end">{peak}</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>'
        f'<text x="{left - 6}" y="{frame.top + chart_h / 2}" text-anchor="end">'
        f"req/{ts['bin_seconds']:g}s</text>"
    )
    return out


def _failure_ticks(frame: _Frame, failures: list[dict[str, Any]]) -> list[str]:
    """One tick under the chart per failure (visible even when a bar is one pixel)."""
    base = frame.base
    return [
        f'<line x1="{frame.x(f["failed_at"]):.1f}" y1="{base + 4}" '
        f'x2="{frame.x(f["failed_at"]):.1f}" y2="{base + 14}" '
        f'stroke="{_CLASS_COLOURS.get(f["class"], "#000")}"/>'
        for f in failures
    ]


def _time_axis(frame: _Frame, events: list[dict[str, Any]]) -> list[str]:
    """Seconds along the bottom of the chart, grid lines, and a dashed line per rollout."""
    x, top, bottom = frame.x, frame.top, frame.lanes_bottom
    out = []
    step = max(1, round(frame.duration / 12))
    t = 0
    while t <= frame.duration:
        out.append(
            f'<text x="{x(t):.1f}" y="{frame.base + 28}" text-anchor="middle">{t}s</text>'
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{bottom}" stroke="#eee"/>'
        )
        t += step
    for e in events:
        if e["kind"] == "rollout-started":
            out.append(
                f'<line x1="{x(e["t"]):.1f}" y1="{top}" x2="{x(e["t"]):.1f}" '
                f'y2="{bottom}" stroke="#555" stroke-dasharray="4,3"/>'
                f'<text x="{x(e["t"]) + 3:.1f}" y="{top + 10}">{escape(e["detail"])}</text>'
            )
    return out


#: Events drawn as a tick on a pod's lane.
_LANE_MARKS = {"sigterm": "#6a3d9a", "endpoint-removed": "#1f77b4", "readiness-failing": "#000"}


def _pod_lanes(
    frame: _Frame, pods: list[dict[str, Any]], events: list[dict[str, Any]]
) -> list[str]:
    """One lane per pod: starting, ready, terminating (or SIGKILLed), with event ticks."""
    x, lane_h = frame.x, frame.lane_h
    by_pod: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_pod.setdefault(e["pod"], []).append(e)
    out = []
    for row, p in enumerate(pods):
        y0 = frame.lanes_top + row * lane_h
        out.append(f'<text x="{frame.left - 6}" y="{y0 + 11}" text-anchor="end">{p["pod"]}</text>')
        start = p["created_at"] or 0.0
        end = p["exited_at"] if p["exited_at"] is not None else frame.duration
        ready_at = next((e["t"] for e in by_pod.get(p["pod"], []) if e["kind"] == "ready"), None)
        stop_at = p["deleted_at"] if p["deleted_at"] is not None else end
        segments = [(start, ready_at or stop_at, "#cccccc")]
        if ready_at is not None:
            segments.append((ready_at, stop_at, "#74c476"))
        if p["deleted_at"] is not None:
            segments.append((p["deleted_at"], end, "#67000d" if p["sigkilled"] else "#fdae6b"))
        for a, b, colour in segments:
            out.append(
                f'<rect x="{x(a):.1f}" y="{y0 + 3}" width="{max(x(b) - x(a), 0.5):.1f}" '
                f'height="{lane_h - 6}" fill="{colour}"/>'
            )
        for e in by_pod.get(p["pod"], []):
            mark = _LANE_MARKS.get(e["kind"])
            if mark:
                out.append(
                    f'<line x1="{x(e["t"]):.1f}" y1="{y0 + 1}" x2="{x(e["t"]):.1f}" '
                    f'y2="{y0 + lane_h - 1}" stroke="{mark}" stroke-width="2"/>'
                )
    return out


_LEGEND = [
    ("#9ecae1", "requests ok"),
    ("#cccccc", "pod starting"),
    ("#74c476", "ready"),
    ("#fdae6b", "terminating"),
    ("#67000d", "SIGKILLed"),
    ("#6a3d9a", "SIGTERM"),
    ("#1f77b4", "endpoint removed at balancer"),
    ("#000", "readiness failing"),
]


def _legend(frame: _Frame, ts: dict[str, Any]) -> list[str]:
    """The colours' meanings (and the failure classes that occurred), wrapped to the width."""
    items = _LEGEND + [
        (_CLASS_COLOURS[c], f"failed: {c}") for c in FAILURE_CLASSES if c in ts["failed"]
    ]
    out = []
    lx, ly = frame.left, frame.lanes_bottom + 22
    for colour, label in items:
        item_w = 14 + 7 * len(label) + 14
        if lx + item_w > frame.width - frame.right:
            lx, ly = frame.left, ly + 18
        out.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{ly}">{escape(label)}</text>'
        )
        lx += item_w
    return out
