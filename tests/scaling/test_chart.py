"""The admin's chart: step lines through the ScalingEvent rows of the last hours."""
from datetime import timedelta

from django.utils import timezone

from scaling.chart import HEIGHT, LEFT, RIGHT, WIDTH, fleet_chart
from scaling.models import ScalingEvent

NOW = timezone.now()


def event(minutes_ago, **fields):
    return ScalingEvent(created_at=NOW - timedelta(minutes=minutes_ago), **fields)


def points(line):
    return [tuple(float(v) for v in pair.split(",")) for pair in line.split()]


def test_nothing_to_draw_without_recent_passes():
    assert fleet_chart([], NOW) is None
    assert fleet_chart([event(500, running=2)], NOW, hours=3) is None


def test_each_panel_draws_step_lines_scaled_to_its_largest_value():
    events = [event(120, running=0, target=2), event(60, booting=2, target=2), event(30, running=4, target=4)]
    chart = fleet_chart(events, NOW, hours=3)
    queue, fleet = chart["panels"]
    assert fleet.top == 4
    css, label, line = fleet.lines[0]
    assert css == "chart-fleet"
    drawn = points(line)
    assert drawn[-1][0] == WIDTH - RIGHT  # held until now
    assert min(x for x, _ in drawn) >= LEFT and max(y for _, y in drawn) <= HEIGHT
    # booting 2 then running 4: the fleet line steps up at the second and third rows
    assert [round(y) for _, y in drawn] == sorted([round(y) for _, y in drawn], reverse=True)
    assert queue.top == 1  # an empty queue still gets an axis


def test_a_folded_row_is_held_until_its_last_pass_and_failed_passes_are_skipped():
    folded = event(90, running=1, target=1, repeats=40)
    folded.last_seen_at = NOW - timedelta(minutes=30)
    failed = event(20, running=9, error="boom")
    chart = fleet_chart([folded, failed], NOW, hours=3)
    _, fleet = chart["panels"]
    assert fleet.top == 1
    assert len(points(fleet.lines[0][2])) == 4  # first pass, last pass, held to now
