"""The admin's picture of the last hours: queue depth and fleet size from ScalingEvent rows.

Server-rendered SVG coordinates (no JavaScript, no style attributes: the page's CSS file
colours the shapes by class), so it works under a strict Content-Security-Policy.
"""
from dataclasses import dataclass
from datetime import timedelta

WIDTH, HEIGHT, LEFT, RIGHT, BOTTOM, TOP = 720, 140, 44, 24, 20, 8


@dataclass(frozen=True)
class Panel:
    title: str
    top: int  # the largest value drawn, the y axis' end
    lines: list  # (css class, label, "x,y x,y …")
    ticks: list  # (x, label) along the time axis


def step_points(samples, value, start, end, top):
    """A step line through (time, value) samples, each held until the next one."""
    span = (end - start).total_seconds() or 1.0

    def x(moment):
        return LEFT + (WIDTH - RIGHT - LEFT) * min(max((moment - start).total_seconds() / span, 0.0), 1.0)

    def y(amount):
        return TOP + (HEIGHT - BOTTOM - TOP) * (1 - amount / top)

    points, last = [], None
    for moment, sample in samples:
        amount = value(sample)
        if last is not None:
            points.append(f"{x(moment):.1f},{y(last):.1f}")
        points.append(f"{x(moment):.1f},{y(amount):.1f}")
        last = amount
    if last is not None:
        points.append(f"{x(end):.1f},{y(last):.1f}")
    return " ".join(points)


def samples(events):
    """(time, event) oldest first; a folded row counts at its first and its last pass."""
    out = []
    for event in sorted(events, key=lambda e: (e.created_at, e.id or 0)):
        if event.error:
            continue  # a failed pass saw nothing
        out.append((event.created_at, event))
        if event.repeats > 1 and event.last_seen_at:
            out.append((event.last_seen_at, event))
    return out


def fleet_chart(events, now, hours=3):
    """Two panels (queue, fleet) over the last `hours`, or None when there is nothing to draw."""
    start = now - timedelta(hours=hours)
    points = [(moment, event) for moment, event in samples(events) if moment >= start]
    if not points:
        return None
    ticks = [(LEFT + (WIDTH - RIGHT - LEFT) * i / hours, f"-{hours - i} h" if i < hours else "now")
             for i in range(hours + 1)]

    def panel(title, series):
        top = max(1, *(value(event) for _, event in points for _, _, value in series))
        lines = [(css, label, step_points(points, value, start, now, top)) for css, label, value in series]
        return Panel(title, top, lines, ticks)

    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "axis_y": HEIGHT - BOTTOM,
        "top_y": TOP,
        "panels": [
            panel("Queue", [
                ("chart-images", "open images", lambda e: e.open_images),
                ("chart-messages", "messages waiting + in flight", lambda e: e.visible + e.in_flight + e.delayed),
            ]),
            panel("Fleet", [
                ("chart-fleet", "nodes (booting + running + draining)", lambda e: e.fleet),
                ("chart-running", "running", lambda e: e.running),
                ("chart-target", "target", lambda e: e.target),
            ]),
        ],
    }
