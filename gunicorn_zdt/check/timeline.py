"""Render a pod's termination timeline (``budget.Budget.timeline()``) as text or SVG.

The events and numbers are the budget's; this module only lays them out. Stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

from ..core.budget import Budget, fmt

__all__ = ["render_svg", "render_text", "slack_text"]


def slack_text(b: Budget) -> str:
    """One line: how much room the grace period leaves after P + D + G + margin."""
    slack = b.slack_seconds
    if slack is None:
        return (
            "slack unknown: no grace period (pass the manifest, or set ZDT_GRACE_PERIOD_SECONDS); "
            f"needs at least {b.sum_text()}"
        )
    verdict = "" if slack >= 0 else " -> the kubelet SIGKILLs before the graceful deadline"
    return (
        f"slack {fmt(slack)} s = terminationGracePeriodSeconds "
        f"{fmt(b.grace_period_seconds or 0)} - ({b.sum_text()}){verdict}"
    )


def render_text(title: str, b: Budget) -> str:
    """The timeline as aligned lines: seconds after pod deletion, then the event."""
    lines = [f"{title}: termination timeline (seconds after the pod is deleted)"]
    for at, event in b.timeline():
        lines.append(f"  {fmt(at):>6} s  {event}")
    if b.min_propagation_seconds is not None:
        lines.append(
            f"  endpoint removal must reach every node and load balancer within preStop + drain "
            f"= {fmt(b.prestop_seconds + b.drain_seconds)} s "
            f"(stated minimum: {fmt(b.min_propagation_seconds)} s)"
        )
    lines.append(f"  {slack_text(b)}")
    return "\n".join(lines)


# --- SVG -------------------------------------------------------------------------------

_WIDTH = 820
_LEFT = 110  # lane labels
_RIGHT = 30
_PANEL_HEIGHT = 280
_COLORS = {
    "propagation": "#d9d9d9",
    "prestop": "#9ecae1",
    "drain": "#3182bd",
    "adaptive": "#6baed6",
    "graceful": "#fd8d3c",
    "margin": "#bdbdbd",
    "sigkill": "#cb181d",
    "marker": "#555555",
}


def _ticks(end: float) -> list[float]:
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if end / s <= 12)
    return [i * step for i in range(math.floor(end / step) + 1)]


class _Canvas:
    """One panel's drawing: seconds -> x, and the SVG elements drawn so far."""

    def __init__(self, b: Budget, top: float) -> None:
        p, d, g, m = b.prestop_seconds, b.drain_seconds, b.graceful_timeout, b.margin_seconds
        self.end = max(
            p + d + g + m, b.grace_period_seconds or 0, b.min_propagation_seconds or 0, 1
        )
        self.plot = _WIDTH - _LEFT - _RIGHT
        self.top = top
        self.k8s_y, self.gun_y, self.bar_h = top + 92, top + 142, 30
        self.out: list[str] = []

    def x(self, t: float) -> float:
        return round(_LEFT + self.plot * t / self.end, 1)

    def bar(
        self, kind: str, start: float, length: float, y: float, label: str, h: int = 30
    ) -> None:
        inside_only = kind in {"drain", "adaptive", "graceful", "margin"}
        if length <= 0:
            return
        x = self.x
        width = x(start + length) - x(start)
        self.out.append(
            f'<rect x="{x(start)}" y="{y}" width="{round(width, 1)}" height="{h}" '
            f'fill="{_COLORS[kind]}"><title>{escape(label)}</title></rect>'
        )
        text_y = y + h / 2 + 4
        if len(label) * 6.2 < width - 6:  # inside the bar
            cls = "inbar" if kind in {"drain", "adaptive", "graceful"} else "label"
            self.out.append(
                f'<text x="{x(start) + 4}" y="{text_y}" class="{cls}">{escape(label)}</text>'
            )
        elif not inside_only:  # right of it
            tx = x(start + length) + 4
            self.out.append(f'<text x="{tx}" y="{text_y}" class="label">{escape(label)}</text>')


def _panel(title: str, b: Budget, top: float) -> list[str]:
    c = _Canvas(b, top)
    c.out.append(
        f'<text x="10" y="{top + 20}" class="title">{escape(title)}: termination timeline</text>'
    )
    c.out.append(f'<text x="10" y="{c.k8s_y + 20}" class="lane">Kubernetes</text>')
    c.out.append(f'<text x="10" y="{c.gun_y + 20}" class="lane">Gunicorn</text>')
    _bars(c, b)
    _markers(c, b)
    _axis_and_legend(c, b)
    return c.out


def _bars(c: _Canvas, b: Budget) -> None:
    p, d, g, m = b.prestop_seconds, b.drain_seconds, b.graceful_timeout, b.margin_seconds
    if b.min_propagation_seconds:
        c.bar(
            "propagation",
            0,
            b.min_propagation_seconds,
            c.k8s_y,
            f"endpoint removal propagates (>= {fmt(b.min_propagation_seconds)} s stated)",
            h=14,
        )
    c.bar("prestop", 0, p, c.k8s_y + 16, f"preStop sleep {fmt(p)} s", h=14)
    low = b.drain_min_seconds
    if low is not None and low < d:  # adaptive: the minimum, then up to the maximum
        c.bar("drain", p, low, c.gun_y, f"drain {fmt(low)} s")
        c.bar("adaptive", p + low, d - low, c.gun_y, f"while traffic arrives, to {fmt(d)} s")
    else:
        c.bar("drain", p, d, c.gun_y, f"drain {fmt(d)} s")
    c.bar("graceful", p + d, g, c.gun_y, f"graceful_timeout {fmt(g)} s")
    c.bar("margin", p + d + g, m, c.gun_y, f"margin {fmt(m)} s")


def _markers(c: _Canvas, b: Budget) -> None:
    p, d, g = b.prestop_seconds, b.drain_seconds, b.graceful_timeout
    low = b.drain_min_seconds
    markers: list[tuple[float, str, str]] = [(0, "deleted", "marker")]
    if p:
        markers.append((p, f"preStop {fmt(p)} s ends: SIGTERM", "marker"))
    else:
        markers[0] = (0, "deleted + SIGTERM", "marker")
    markers += [
        (
            p + d,
            "listeners close (at the latest)" if low is not None and low < d else "listeners close",
            "marker",
        ),
        (p + d + g, "graceful deadline", "marker"),
    ]
    if b.grace_period_seconds is not None:
        markers.append((b.grace_period_seconds, "SIGKILL", "sigkill"))
    x = c.x
    for i, (at, label, kind) in enumerate(markers):
        y_label = c.top + 44 + (i % 2) * 16
        anchor = "end" if x(at) > _WIDTH - 150 else "start"
        dx = -3 if anchor == "end" else 3
        c.out.append(
            f'<line x1="{x(at)}" y1="{y_label + 4}" x2="{x(at)}" y2="{c.gun_y + c.bar_h + 6}" '
            f'stroke="{_COLORS[kind]}" stroke-width="{2 if kind == "sigkill" else 1}" '
            'stroke-dasharray="4 3"/>'
        )
        c.out.append(
            f'<text x="{x(at) + dx}" y="{y_label}" class="marker" text-anchor="{anchor}" '
            f'fill="{_COLORS[kind]}">{escape(label)} ({fmt(at)} s)</text>'
        )


def _axis_and_legend(c: _Canvas, b: Budget) -> None:
    x, plot, out = c.x, c.plot, c.out
    axis_y = c.gun_y + c.bar_h + 14
    out.append(
        f'<line x1="{_LEFT}" y1="{axis_y}" x2="{_LEFT + plot}" y2="{axis_y}" stroke="#333"/>'
    )
    for t in _ticks(c.end):
        out.append(f'<line x1="{x(t)}" y1="{axis_y}" x2="{x(t)}" y2="{axis_y + 4}" stroke="#333"/>')
        out.append(
            f'<text x="{x(t)}" y="{axis_y + 16}" class="tick" text-anchor="middle">{fmt(t)}</text>'
        )
    out.append(
        f'<text x="{_LEFT + plot}" y="{axis_y + 30}" class="tick" text-anchor="end">'
        "seconds after the pod is deleted</text>"
    )
    legend = [
        ("drain", "drain: 503, still serving"),
        ("adaptive", "extended while traffic arrives"),
        ("graceful", "graceful stop: requests finish"),
        ("margin", "margin before SIGKILL"),
    ]
    lx = 10.0
    for kind, text in legend:
        out.append(
            f'<rect x="{lx}" y="{axis_y + 40}" width="10" height="10" fill="{_COLORS[kind]}"/>'
        )
        out.append(f'<text x="{lx + 14}" y="{axis_y + 49}" class="label">{escape(text)}</text>')
        lx += 14 + len(text) * 6.2 + 16
    out.append(f'<text x="10" y="{axis_y + 70}" class="slack">{escape(slack_text(b))}</text>')


def render_svg(panels: Sequence[tuple[str, Budget]]) -> str:
    """One SVG with a timeline panel per pod; deterministic output (no dates, no ids)."""
    height = _PANEL_HEIGHT * len(panels) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="11">',
        "<style>.title{font-size:14px;font-weight:bold}.lane{font-size:12px;font-weight:bold}"
        ".label{fill:#222}.inbar{fill:#fff}.tick{fill:#333;font-size:10px}"
        ".slack{font-size:11px;fill:#222}</style>",
        f'<rect width="{_WIDTH}" height="{height}" fill="#fff"/>',
    ]
    for i, (title, b) in enumerate(panels):
        parts.extend(_panel(title, b, i * _PANEL_HEIGHT))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
