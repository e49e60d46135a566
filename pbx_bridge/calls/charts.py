"""Small bar charts as inline SVG, server-rendered: no script, readable by screen readers.

The chart is an image with a name and a description (``role="img"``, ``<title>``,
``<desc>``, ``aria-labelledby``); every bar carries its own ``<title>`` (label and value),
shown on hover and read aloud, so the numbers are never only in the picture. Colours
come from ``currentColor`` and CSS classes, so the page's theme (and forced-colours mode)
decides them. All text is escaped: labels may come from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from pbx_bridge.calls.dashboard import DayCount

WIDTH = 600
HEIGHT = 160
AXIS = 20  # room under the bars for the first and last labels


@dataclass(frozen=True)
class Bar:
    label: str  # e.g. the day, "2026-11-30"
    value: float | None  # None: no value (drawn as no bar, said as "no data")


def bar_chart_svg(
    bars: Sequence[Bar],
    *,
    title: str,
    description: str,
    chart_id: str,
    scale_max: float | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    no_data: str = "no data",
) -> str:
    """One ``<svg>`` element; bar heights are ``value / scale_max`` of the plot's height.

    ``scale_max`` defaults to the largest value (a rate passes 1.0, so 50 % is half
    height); ``chart_id`` makes the title's id unique on the page.
    """
    if not chart_id.replace("-", "").isalnum():
        raise ValueError(f"chart_id {chart_id!r}: letters, digits and '-' only")
    values = [b.value for b in bars if b.value is not None]
    top = scale_max if scale_max is not None else max(values, default=0.0)
    plot = HEIGHT - AXIS
    slot = WIDTH / max(len(bars), 1)
    gap = min(2.0, slot / 4)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" class="chart">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<line class="axis" x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}" '
        'stroke="currentColor" stroke-width="1"/>',
    ]
    for i, bar in enumerate(bars):
        said = no_data if bar.value is None else fmt(bar.value)
        height = 0.0 if bar.value is None or top <= 0 else min(bar.value / top, 1.0) * plot
        x = i * slot + gap / 2
        parts.append(
            f'<rect class="bar" x="{x:.2f}" y="{plot - height:.2f}" '
            f'width="{slot - gap:.2f}" height="{height:.2f}" fill="currentColor">'
            f"<title>{escape(bar.label)}: {escape(said)}</title></rect>"
        )
    if bars:
        for anchor, x, bar in (("start", 0.0, bars[0]), ("end", float(WIDTH), bars[-1])):
            parts.append(
                f'<text class="label" x="{x:.0f}" y="{HEIGHT - 4}" text-anchor={quoteattr(anchor)} '
                f'font-size="12" fill="currentColor">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def calls_per_day_svg(
    days: Sequence[DayCount], *, title: str, description: str, chart_id: str = "calls"
) -> str:
    """Calls per day, the busiest day full height. Title and description come in the
    reader's language from the caller (the console's messages)."""
    bars = [Bar(d.day.isoformat(), float(d.count.calls)) for d in days]
    return bar_chart_svg(bars, title=title, description=description, chart_id=chart_id,
                         fmt=lambda v: f"{v:.0f}")


def consent_rate_per_day_svg(
    days: Sequence[DayCount],
    *,
    title: str,
    description: str,
    chart_id: str = "consent",
    no_data: str = "-",
) -> str:
    """Consent rate per day on a 0-100 % scale; a day nobody was asked has no bar."""
    bars = [Bar(d.day.isoformat(), d.count.consent_rate) for d in days]
    return bar_chart_svg(bars, title=title, description=description, chart_id=chart_id,
                         scale_max=1.0, fmt=lambda v: f"{v:.0%}", no_data=no_data)
