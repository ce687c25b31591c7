"""Charts drawn on the server as SVG: no chart library, readable without JavaScript, and
each one carries its numbers as a table for screen readers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

WIDTH = 720
HEIGHT = 220
_LEFT = 56
_BOTTOM = 28
_TOP = 12
_MAX_DOTS = 60


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
    # Each row's value as the reader should see it ("1.2 MiB"); empty: the plain number.
    labels: list[str] = field(default_factory=list)
    # A line's points as SVG coordinates, marked when there are few enough to tell apart
    # (a single sample draws no line).
    dots: list[tuple[float, float]] = field(default_factory=list)
    # The heading of the data table's first column: what each row's label is.
    key: str = "When"


Format = Callable[[float], str]


def _number(top: float) -> Format:
    """Tick labels with enough decimals to tell the ticks of small values apart."""
    if top >= 10:
        return lambda value: f"{value:,.0f}"
    places = max(2, 1 - math.floor(math.log10(top / 4)))
    return lambda value: f"{value:,.{places}f}"


def _scale(values: list[float], fmt: Format | None = None) -> tuple[float, list[tuple[float, str]]]:
    top = max([*values, 0.0]) or 1.0
    label = fmt or _number(top)
    ticks = []
    for step in range(5):
        value = top * step / 4
        y = HEIGHT - _BOTTOM - (HEIGHT - _BOTTOM - _TOP) * step / 4
        ticks.append((y, label(value)))
    return top, ticks


def _y(value: float, top: float) -> float:
    return HEIGHT - _BOTTOM - (HEIGHT - _BOTTOM - _TOP) * (value / top)


def _left(ticks: list[tuple[float, str]]) -> int:
    """Room for the longest value-axis label (about 6.5 px a character at 11 px)."""
    return max(_LEFT, 10 + round(6.5 * max(len(label) for _, label in ticks)))


def bar_chart(
    title: str,
    rows: list[tuple[str, float]],
    *,
    unit: str = "",
    fmt: Format | None = None,
    key: str = "When",
) -> Chart:
    """One bar per (label, value), in the order given; ``fmt`` writes the values (axis
    and data table) in their unit, ``key`` names what the labels are."""
    top, ticks = _scale([v for _, v in rows], fmt)
    left = _left(ticks)
    plot = WIDTH - left - 8
    slot = plot / max(len(rows), 1)
    bars, x_labels = [], []
    every = max(1, len(rows) // 12)
    for index, (label, value) in enumerate(rows):
        x = left + index * slot + slot * 0.15
        y = _y(value, top)
        bars.append(Bar(label, value, x, y, slot * 0.7, HEIGHT - _BOTTOM - y))
        if index % every == 0:
            x_labels.append((x + slot * 0.35, label))
    labels = [fmt(v) for _, v in rows] if fmt else []
    return Chart(
        title, unit, "bars", bars, "", ticks, x_labels, rows, left=left, labels=labels, key=key
    )


def line_chart(
    title: str,
    points: list[tuple[datetime, float]],
    *,
    unit: str = "",
    fmt: Format | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Chart:
    """A line through (time, value) points, oldest first; ``fmt`` as for ``bar_chart``.
    The time axis spans ``window`` when given (gaps and a lone point show where they
    are in it), else the points."""
    top, ticks = _scale([v for _, v in points], fmt)
    left = _left(ticks)
    rows = [(moment.strftime("%Y-%m-%d %H:%M"), value) for moment, value in points]
    labels = [fmt(v) for _, v in points] if fmt else []
    if not points:
        return Chart(title, unit, "line", [], "", ticks, [], rows, left=left, labels=labels)
    first, last = window or (points[0][0], points[-1][0])
    start = first.timestamp()
    span = (last.timestamp() - start) or 1.0
    plot = WIDTH - left - 8

    def x_of(moment: datetime) -> float:
        return left + plot * (moment.timestamp() - start) / span

    coords = [(x_of(moment), _y(value, top)) for moment, value in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    if window:
        moments = [first + (last - first) * (2 * i + 1) / 12 for i in range(6)]
    else:
        moments = [points[i][0] for i in range(0, len(points), max(1, len(points) // 6))]
    x_labels = [(x_of(moment), moment.strftime("%m-%d %H:%M")) for moment in moments]
    dots = coords if len(coords) <= _MAX_DOTS else []
    return Chart(
        title, unit, "line", [], line, ticks, x_labels, rows, left=left, labels=labels, dots=dots
    )
