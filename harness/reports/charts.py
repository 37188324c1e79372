"""Charts as inline SVG, drawn here so report.html needs no script, no font and no network.

Each chart is a small line chart with axes, grid, legend and native tooltips (``<title>``);
fault windows are shaded bands with their label. Gaps in a series (no sample in a second)
break its line instead of drawing through them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 860, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 40
Scale = Callable[[float], float]
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class Band:
    """A shaded span of the x axis, such as a fault window."""

    start: float
    end: float
    label: str


@dataclass
class Chart:
    title: str
    y_label: str
    x: Sequence[float]
    series: list[Series]
    bands: list[Band] = field(default_factory=list)
    x_label: str = "seconds from the start of the load"
    x_ticks: Sequence[tuple[float, str]] | None = None
    """Labelled positions for a categorical x axis; None for a numeric one."""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return round tick values that cover [low, high], such as 0, 50, 100, 150."""
    if high <= low:
        high = low + 1
    raw_step = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _format_tick(value: float) -> str:
    return f"{value:,.10g}" if abs(value) < 1e6 else f"{value:.3g}"


def render_svg(chart: Chart) -> str:
    """Draw ``chart`` as an SVG element sized WIDTH x HEIGHT."""
    values = [v for series in chart.series for v in series.values if v is not None]
    if not chart.x or not values:
        return _empty(chart.title)
    x_low, x_high = min(chart.x), max(chart.x)
    for band in chart.bands:
        x_low, x_high = min(x_low, band.start), max(x_high, band.end)
    if x_high == x_low:
        x_high = x_low + 1
    y_ticks = nice_ticks(min(0.0, min(values)), max(values))
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f"<title>{escape(chart.title)}</title>",
        f'<text x="{LEFT}" y="18" class="chart-title">{escape(chart.title)}</text>',
    ]
    parts += _bands(chart.bands, sx, TOP, plot_h)
    parts += _y_axis(y_ticks, sy, plot_w, chart.y_label)
    parts += _x_axis(chart, x_low, x_high, sx, TOP + plot_h)
    for position, series in enumerate(chart.series):
        color = series.color or PALETTE[position % len(PALETTE)]
        parts += _line(series, chart.x, sx, sy, color)
    parts += _legend(chart.series)
    parts.append("</svg>")
    return "\n".join(parts)


def _empty(title: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 60" width="{WIDTH}" height="60">'
        f'<text x="{LEFT}" y="18" class="chart-title">{escape(title)}</text>'
        f'<text x="{LEFT}" y="44" class="muted">no samples</text></svg>'
    )


def _bands(bands: Sequence[Band], sx: Scale, top: float, height: float) -> list[str]:
    parts = []
    for band in bands:
        x0, x1 = sx(band.start), sx(band.end)
        parts.append(
            f'<rect class="fault" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" height="{height}">'
            f"<title>{escape(band.label)}: {band.start:.2f}s to {band.end:.2f}s</title></rect>"
        )
        parts.append(f'<text class="fault-label" x="{x0 + 3:.1f}" y="{top + 12}">{escape(band.label)}</text>')
    return parts


def _y_axis(ticks: Sequence[float], sy: Scale, plot_w: float, label: str) -> list[str]:
    parts = []
    for tick in ticks:
        y = sy(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_format_tick(tick)}</text>'
        )
    middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
    parts.append(
        f'<text class="axis-label" transform="translate(14 {middle:.0f}) rotate(-90)" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return parts


def _x_axis(chart: Chart, low: float, high: float, sx: Scale, bottom: float) -> list[str]:
    ticks = chart.x_ticks or [
        (tick, _format_tick(tick)) for tick in nice_ticks(low, high, 8) if low <= tick <= high
    ]
    parts = [f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>']
    for value, text in ticks:
        x = sx(value)
        parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(text)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.0f}" y="{HEIGHT - 4}" '
        f'text-anchor="middle">{escape(chart.x_label)}</text>'
    )
    return parts


def _line(series: Series, xs: Sequence[float], sx: Scale, sy: Scale, color: str) -> list[str]:
    segments: list[list[str]] = [[]]
    dots = []
    for x, y in zip(xs, series.values, strict=False):
        if y is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(f"{sx(x):.1f},{sy(y):.1f}")
        dots.append((sx(x), sy(y), x, y))
    dash = ' stroke-dasharray="5 4"' if series.dashed else ""
    parts = [
        f'<polyline class="series" fill="none" stroke="{color}"{dash} points="{" ".join(points)}">'
        f"<title>{escape(series.name)}</title></polyline>"
        for points in segments
        if points
    ]
    if len(dots) <= 40:
        parts += [
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{color}">'
            f"<title>{escape(series.name)}: {_format_tick(round(y, 3))} at {_format_tick(x)}</title></circle>"
            for cx, cy, x, y in dots
        ]
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts = []
    x = WIDTH - RIGHT
    for position in reversed(range(len(series))):
        item = series[position]
        color = item.color or PALETTE[position % len(PALETTE)]
        width = 24 + 7 * len(item.name)
        x -= width
        parts.append(f'<rect x="{x}" y="10" width="14" height="4" fill="{color}"/>')
        parts.append(f'<text class="legend" x="{x + 18}" y="16">{escape(item.name)}</text>')
    return parts
