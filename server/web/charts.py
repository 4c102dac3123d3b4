"""Charts as inline SVG built on the server: no chart library, no script, works offline."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from ground.timeutil import from_ts, to_ts
from server.db.base import Database
from server.web.scope import household_scope
from server.web.users import User

__all__ = ["KIND_COLOURS", "ack_times_by_grid", "bar_chart_svg", "incidents_per_day",
           "stacked_days_svg"]

KIND_COLOURS = {
    "breach": "#c62828", "possible_breach": "#ef6c00", "overdue_return": "#6a1b9a",
    "visitor": "#1565c0", "device_offline": "#546e7a", "tamper": "#2e7d32",
}
_OTHER_COLOUR = "#8d6e63"


async def incidents_per_day(
    db: Database, user: User, zone: str, days: int, today: date | None = None
) -> tuple[list[date], dict[str, list[int]]]:
    """Counts of incidents per local day and kind for the last ``days`` days."""
    tz = ZoneInfo(zone)
    last = today or datetime.now(tz).date()
    first = last - timedelta(days=days - 1)
    scope, params = household_scope(user)
    rows = await db.fetch_all(
        "SELECT i.kind, i.opened_at FROM incidents i "  # noqa: S608 - scope is a fixed fragment
        f"LEFT JOIN households h ON h.id = i.household_id WHERE i.opened_at >= ? AND {scope}",
        [to_ts(datetime.combine(first, datetime.min.time(), tzinfo=tz)), *params],
    )
    axis = [first + timedelta(days=n) for n in range(days)]
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for row in rows:
        index = (from_ts(row["opened_at"]).astimezone(tz).date() - first).days
        if 0 <= index < days:
            counts[row["kind"]][index] += 1
    return axis, dict(counts)


async def ack_times_by_grid(db: Database, user: User) -> list[tuple[str, float, int]]:
    """(grid name, median seconds to acknowledge, incidents) for acknowledged incidents."""
    scope, params = household_scope(user)
    rows = await db.fetch_all(
        "SELECT COALESCE(g.name, '') AS grid, i.opened_at, i.acknowledged_at "  # noqa: S608
        "FROM incidents i LEFT JOIN households h ON h.id = i.household_id "
        "LEFT JOIN grids g ON g.id = h.grid_id "
        f"WHERE i.acknowledged_at IS NOT NULL AND {scope}", params,
    )
    by_grid: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        delta = (from_ts(row["acknowledged_at"]) - from_ts(row["opened_at"])).total_seconds()
        by_grid[row["grid"]].append(max(delta, 0.0))
    return sorted(((grid, statistics.median(v), len(v)) for grid, v in by_grid.items()),
                  key=lambda item: item[0])


def stacked_days_svg(
    axis: list[date], counts: dict[str, list[int]], labels: dict[str, str], title: str
) -> str:
    """A stacked bar per day, one colour per kind, with a legend."""
    width, height, left, bottom, top = 640, 260, 36, 40, 16
    plot_h = height - bottom - top
    step = (width - left - 10) / max(len(axis), 1)
    totals = [sum(series[i] for series in counts.values()) for i in range(len(axis))]
    peak = max([*totals, 1])
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 22 * _rows(counts)}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for tick in _ticks(peak):
        y = top + plot_h - plot_h * tick / peak
        parts.append(f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end" font-size="11">{tick}</text>')
    for i, day in enumerate(axis):
        x = left + i * step + step * 0.15
        y = float(top + plot_h)
        for kind, series in sorted(counts.items()):
            if series[i]:
                h = plot_h * series[i] / peak
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                    f'fill="{KIND_COLOURS.get(kind, _OTHER_COLOUR)}"><title>'
                    f'{day.isoformat()} {escape(labels.get(kind, kind))}: {series[i]}'
                    '</title></rect>')
        if len(axis) <= 16 or i % 2 == 0:
            parts.append(f'<text x="{x + step * 0.35:.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle" font-size="10">{day.strftime("%m-%d")}</text>')
    for n, kind in enumerate(sorted(counts)):
        y = height + 22 * n
        parts.append(f'<rect x="{left}" y="{y - 10}" width="12" height="12" '
                     f'fill="{KIND_COLOURS.get(kind, _OTHER_COLOUR)}"/>'
                     f'<text x="{left + 18}" y="{y}" font-size="12">'
                     f'{escape(labels.get(kind, kind))} ({sum(counts[kind])})</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(items: list[tuple[str, float, str]], title: str) -> str:
    """Horizontal bars: (label, value, value text)."""
    row_h, left, width = 28, 140, 640
    height = max(len(items), 1) * row_h + 10
    peak = max([v for _, v, _ in items] + [1.0])
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for n, (name, value, text) in enumerate(items):
        y = 6 + n * row_h
        w = (width - left - 90) * value / peak
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="12">'
                     f'{escape(name)}</text><rect x="{left}" y="{y + 4}" width="{w:.1f}" '
                     f'height="16" fill="#1565c0"/><text x="{left + w + 6:.1f}" y="{y + 16}" '
                     f'font-size="12">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(peak: int) -> list[int]:
    step = max(1, -(-peak // 4))
    return list(range(0, peak + 1, step))


def _rows(counts: dict[str, list[int]]) -> int:
    return len(counts)
