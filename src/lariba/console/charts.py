"""Charts drawn on the server as SVG: no chart library, readable without JavaScript, and
each one carries its numbers as a table for screen readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH = 720
HEIGHT = 220
_LEFT = 56
_BOTTOM = 28
_TOP = 12


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    """What the ``chart`` macro draws: bars or a line, its axis ticks and its data."""

    title: str
    unit: str
    kind: str  # "bars" or "line"
    bars: list[Bar]
    line: str  # SVG polyline points
    ticks: list[tuple[float, str]]  # (y, label) of the value axis
    x_labels: list[tuple[float, str]]
    rows: list[tuple[str, float]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    plot_bottom: int = HEIGHT - _BOTTOM


def _scale(values: list[float]) -> tuple[float, list[tuple[float, str]]]:
    top = max([*values, 0.0]) or 1.0
    ticks = []
    for step in range(5):
        value = top * step / 4
        y = HEIGHT - _BOTTOM - (HEIGHT - _BOTTOM - _TOP) * step / 4
        ticks.append((y, f"{value:,.2f}" if top < 10 else f"{value:,.0f}"))
    return top, ticks


def _y(value: float, top: float) -> float:
    return HEIGHT - _BOTTOM - (HEIGHT - _BOTTOM - _TOP) * (value / top)


def bar_chart(title: str, rows: list[tuple[str, float]], *, unit: str = "") -> Chart:
    """One bar per (label, value), in the order given."""
    top, ticks = _scale([v for _, v in rows])
    plot = WIDTH - _LEFT - 8
    slot = plot / max(len(rows), 1)
    bars, x_labels = [], []
    every = max(1, len(rows) // 12)
    for index, (label, value) in enumerate(rows):
        x = _LEFT + index * slot + slot * 0.15
        y = _y(value, top)
        bars.append(Bar(label, value, x, y, slot * 0.7, HEIGHT - _BOTTOM - y))
        if index % every == 0:
            x_labels.append((x + slot * 0.35, label))
    return Chart(title, unit, "bars", bars, "", ticks, x_labels, rows)


def line_chart(title: str, points: list[tuple[datetime, float]], *, unit: str = "") -> Chart:
    """A line through (time, value) points, oldest first."""
    top, ticks = _scale([v for _, v in points])
    rows = [(moment.strftime("%Y-%m-%d %H:%M"), value) for moment, value in points]
    if not points:
        return Chart(title, unit, "line", [], "", ticks, [], rows)
    start, end = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (end - start) or 1.0
    plot = WIDTH - _LEFT - 8
    coords = [
        (_LEFT + plot * (moment.timestamp() - start) / span, _y(value, top))
        for moment, value in points
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    every = max(1, len(points) // 6)
    x_labels = [
        (coords[i][0], points[i][0].strftime("%m-%d %H:%M")) for i in range(0, len(points), every)
    ]
    return Chart(title, unit, "line", [], line, ticks, x_labels, rows)
