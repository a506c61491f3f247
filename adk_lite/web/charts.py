"""Bar charts as inline SVG, drawn on the server (no JavaScript, no chart library).

The SVG is built from escaped text only: labels come from stored values (model
names, days), so every one goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape
from typing import Sequence

BAR_HEIGHT, GAP, LABEL_WIDTH, WIDTH = 18, 6, 220, 720
"""Pixels: one bar's height, the gap between bars, the label column, the whole chart."""
LABEL_CHARS = 40
"""A label is cut to this many characters before it is escaped (after, an entity could be cut)."""


def bar_chart(rows: Sequence[tuple[str, int]], title: str) -> str:
    """An SVG document (a str) with one horizontal bar per ``(label, value)``,
    longest bar = largest value, the value written after each bar.

    Args:
        rows: ``(label, value)`` pairs in the order to draw; values are ints >= 0.
        title: the chart's accessible title (``<title>``), escaped.

    Returns:
        ``<svg ...>...</svg>``; with no rows, an SVG that says "no data".
    """
    if not rows:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="30">'
                f'<title>{escape(title)}</title><text x="0" y="20">no data</text></svg>')
    top = max(value for _label, value in rows) or 1
    bar_space = WIDTH - LABEL_WIDTH - 90
    height = len(rows) * (BAR_HEIGHT + GAP)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{WIDTH}" height="{height}">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(rows):
        y = i * (BAR_HEIGHT + GAP)
        width = max(1, round(bar_space * value / top)) if value else 0
        parts.append(f'<text x="0" y="{y + BAR_HEIGHT - 4}" class="label">{escape(str(label)[:LABEL_CHARS])}</text>'
                     f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width}" height="{BAR_HEIGHT}" class="bar">'
                     f"<title>{escape(str(label))}: {value:,}</title></rect>"
                     f'<text x="{LABEL_WIDTH + width + 6}" y="{y + BAR_HEIGHT - 4}" class="value">{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)
