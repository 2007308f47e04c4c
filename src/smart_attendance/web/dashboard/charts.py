"""Charts of the dashboard as inline SVG, drawn on the server (no script, no library, no CDN):
a stacked bar of statuses and a column chart of attendance per day (days labelled ``7 Dec``:
``day_label``). Every chart has a text alternative (``<title>`` and ``aria-label``) and its
numbers are also printed beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup, escape

from ...models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT

PENDING = "Not yet seen"
ORDER = (STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED, STATUS_ABSENT, PENDING)
FILL = {
    STATUS_PRESENT: "#15803d",
    STATUS_LATE: "#b45309",
    STATUS_EXCUSED: "#1d4ed8",
    STATUS_ABSENT: "#b91c1c",
    PENDING: "#9ca3af",
}


def day_label(day: date) -> str:
    """A chart's label of a day, ``7 Dec``: never ``07/12``, which reads as July in some
    countries and December in others (the date inputs show the browser's own order)."""
    return f"{day.day} {day:%b}"


def describe(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in ORDER if counts.get(s, 0))


def stacked_bar(counts: Mapping[str, int], width: int = 600, height: int = 12) -> Markup:
    """One horizontal bar split by status (Present, Late, Excused, Absent, not yet seen)."""
    total = sum(counts.get(s, 0) for s in ORDER)
    label = escape(describe(counts) or "nobody expected")
    parts = []
    x = 0.0
    for status in ORDER:
        n = counts.get(status, 0)
        if not n or not total:
            continue
        w = width * n / total
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{FILL[status]}"/>'
        )
        x += w
    if not parts:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#e5e7eb"/>')
    return Markup(  # noqa: S704 - numbers, fixed colours and escaped labels only
        f'<svg class="stack-bar" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{label}"><title>{label}</title>{"".join(parts)}</svg>'
    )


def daily_columns(
    days: Sequence[tuple[date, Mapping[str, int]]],
    width: int = 720,
    height: int = 200,
    threshold_pct: float | None = None,
) -> Markup:
    """Columns of the attendance per day (share of expected periods: Present and Late stacked,
    then Excused; Absent is the gap up to 100%), with the alert threshold as a line."""
    left, bottom, top = 34, 22, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    n = max(1, len(days))
    step = plot_w / n
    bar = max(1.0, step * 0.75)
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Attendance per day"><title>Attendance per day</title>'
    ]
    for pct in (0, 50, 100):
        y = top + plot_h * (1 - pct / 100)
        out.append(
            f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d1d5db"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#374151">{pct}%</text>'
        )
    label_every = max(1, round(n / 8))
    for i, (day, counts) in enumerate(days):
        expected = sum(
            counts.get(s, 0) for s in (STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED, STATUS_ABSENT)
        )
        x = left + i * step + (step - bar) / 2
        y_base = float(top + plot_h)
        tip = escape(f"{day.isoformat()}: {describe(counts) or 'no period'}")
        out.append(f"<g><title>{tip}</title>")
        for status in (STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED):
            if not expected or not counts.get(status):
                continue
            h = plot_h * counts[status] / expected
            y_base -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y_base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{FILL[status]}"/>'
            )
        out.append("</g>")
        if i % label_every == 0:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 6}" font-size="11" '
                f'text-anchor="middle" fill="#374151">{day_label(day)}</text>'
            )
    if threshold_pct is not None:
        y = top + plot_h * (1 - threshold_pct / 100)
        out.append(
            f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}" stroke="#111827" '
            f'stroke-dasharray="5 4"><title>alert threshold {threshold_pct:g}%</title></line>'
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - numbers, fixed colours, escaped labels
