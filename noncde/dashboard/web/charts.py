"""noncde.dashboard web (non-CDE): server-rendered SVG charts (no script, no inline style, so
the strict CSP holds). Every label is escaped; values are integers or ratios."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40


@dataclass(frozen=True, slots=True)
class Point:
    label: str  # x-axis label (a day)
    value: float | None  # None: no data that day
    caption: str  # the value as text, for the tooltip and screen readers


def _frame(title: str, body: list[str], y_labels: Sequence[tuple[float, str]]) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'class="chart" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'class="axis"/>',
    ]
    for fraction, text in y_labels:
        y = TOP + plot_h - fraction * plot_h
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(text)}</text>"
        )
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def bar_chart(title: str, points: Sequence[Point], *, axis: str = "") -> Markup:
    """Bars scaled to the largest value; a day without data has no bar."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max((p.value or 0.0 for p in points), default=0.0) or 1.0
    step = plot_w / max(len(points), 1)
    body = []
    for index, point in enumerate(points):
        x = LEFT + index * step
        if point.value:
            h = point.value / top * plot_h
            body.append(
                f'<rect x="{x + step * 0.15:.1f}" y="{TOP + plot_h - h:.1f}" '
                f'width="{step * 0.7:.1f}" height="{h:.1f}" class="bar">'
                f"<title>{escape(point.label)}: {escape(point.caption)}</title></rect>"
            )
        if len(points) <= 16 or index % max(1, len(points) // 8) == 0:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'class="tick">{escape(point.label)}</text>'
            )
    labels = [(0.0, "0"), (0.5, f"{top / 2:,.0f}{axis}"), (1.0, f"{top:,.0f}{axis}")]
    return _frame(title, body, labels)


def rate_chart(title: str, points: Sequence[Point]) -> Markup:
    """A 0-100 % line with a dot per day that has data (gaps where it has none)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)
    body = []
    path: list[str] = []
    for index, point in enumerate(points):
        x = LEFT + index * step + step / 2
        if point.value is None:
            if len(path) > 1:
                body.append(f'<polyline points="{" ".join(path)}" class="line"/>')
            path = []
        else:
            y = TOP + plot_h - point.value * plot_h
            path.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" class="dot">'
                f"<title>{escape(point.label)}: {escape(point.caption)}</title></circle>"
            )
        if len(points) <= 16 or index % max(1, len(points) // 8) == 0:
            body.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'class="tick">{escape(point.label)}</text>'
            )
    if len(path) > 1:
        body.insert(0, f'<polyline points="{" ".join(path)}" class="line"/>')
    return _frame(title, body, [(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")])
