"""One autoscaler pass with an in-memory fleet and the suite's moto SQS: what it observes, what act()
asks of the fleet, what it records, and what a restarted autoscaler remembers."""
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from classifier.models import Image
from imgsite.aws import client, queue_url
from scaling.autoscaler import (
    Look,
    act,
    history_from_events,
    observe,
    policy_settings,
    reading_from,
    recent_arrivals,
    replay,
    run_pass,
)
from scaling.fleets import BOOTING, DRAINING, RUNNING, Node
from scaling.models import ScalingEvent
from scaling.policy import Controller, PolicySettings, Reading
from tests.classifier.conftest import make_image
from tests.conftest import drain
from tests.scaling.conftest import start_worker

NOW = timezone.now()


class FakeFleet:
    """The fleet interface in memory; it records every launch and retire it is asked for."""

    def __init__(self, *nodes):
        self.nodes = {node.id: node for node in nodes}
        self.launched = []
        self.retired = []

    def list(self):
        return sorted(self.nodes.values(), key=lambda node: node.id)

    def launch(self, count):
        ids = [f"new-{len(self.nodes) + i}" for i in range(count)]
        self.nodes.update((node_id, Node(node_id, BOOTING, NOW)) for node_id in ids)
        self.launched.append(count)
        return ids

    def retire(self, node_ids):
        self.retired.append(list(node_ids))
        for node_id in node_ids:
            self.nodes[node_id] = replace(self.nodes[node_id], state=DRAINING, draining_since=NOW)
        return list(node_ids)


def node(node_id, state=RUNNING, age=0):
    return Node(node_id, state, NOW - timedelta(seconds=age))


def look(nodes, busy=()):
    return Look(Reading(), list(nodes), set(busy))


def make_busy(*names):
    for name in names:
        start_worker(name, busy=True)


@pytest.fixture
def backlog(empty_queues, db):
    """Put `count` messages in the classify queue (emptied again afterwards)."""
    sqs, url = client("sqs"), queue_url(settings.CLASSIFY_QUEUE)

    def fill(count):
        for start in range(0, count, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": "[]"} for i in range(start, min(start + 10, count))])

    yield fill
    drain(settings.CLASSIFY_QUEUE)


def controller(max_nodes=2, **changes):
    return Controller(replace(policy_settings(min_nodes=0, max_nodes=max_nodes), **changes))


def one_pass(fleet, control=None, dry_run=False, now=None):
    event, _ = run_pass(fleet, "local", control or controller(), now or timezone.now(), dry_run=dry_run)
    return event


def test_act_launches_the_difference():
    fleet = FakeFleet(node("a"))
    action = act(fleet, look(fleet.list()), 3, policy_settings(max_nodes=5), dry_run=False)
    assert fleet.launched == [2] and action.startswith("launch 2")


def test_act_counts_draining_nodes_against_max_unless_a_surge_allows_more():
    fleet = FakeFleet(node("a"), node("b", DRAINING), node("c", DRAINING))
    action = act(fleet, look(fleet.list()), 3, policy_settings(max_nodes=3), dry_run=False)
    assert fleet.launched == [] and action == "2 held back: booting + running + draining at max"
    act(fleet, look(fleet.list()), 3, policy_settings(max_nodes=3), dry_run=False, surge=1)
    assert fleet.launched == [1]


def test_act_retires_booting_nodes_before_idle_ready_ones_and_never_a_busy_one():
    fleet = FakeFleet(node("busy"), node("idle", age=300), node("boot", BOOTING, age=10))
    action = act(fleet, look(fleet.list(), busy={"busy"}), 1, policy_settings(max_nodes=5), dry_run=False)
    assert fleet.retired == [["boot", "idle"]]
    assert action == "retire boot, idle"
    fleet = FakeFleet(node("a"), node("b"))
    assert act(fleet, look(fleet.list(), busy={"a", "b"}), 0, policy_settings(), dry_run=False) == \
        "2 busy node(s) kept"


def test_act_pushes_draining_nodes_along_while_holding():
    fleet = FakeFleet(node("a"), node("b", DRAINING))
    action = act(fleet, look(fleet.list()), 1, policy_settings(), dry_run=False)
    assert fleet.retired == [["b"]] and fleet.launched == []
    assert action == "nothing"


def test_act_in_dry_run_changes_nothing():
    fleet = FakeFleet(node("a"), node("b"), node("c", DRAINING))
    assert act(fleet, look(fleet.list()), 0, policy_settings(), dry_run=True) == "retire a, b"
    assert act(fleet, look(fleet.list()), 4, policy_settings(max_nodes=5), dry_run=True) == "launch 2"
    assert fleet.retired == fleet.launched == []


def test_observe_reads_messages_not_images_and_busy_nodes_not_in_flight_work(backlog, user):
    backlog(3)
    start_worker("gone", busy=True)  # busy, but not one of this fleet's nodes
    make_busy("a")
    start_worker("b")
    now = timezone.now()
    fleet = FakeFleet(*(Node(name, state, now - timedelta(seconds=age))
                        for name, state, age in [("a", RUNNING, 120), ("b", RUNNING, 120), ("c", BOOTING, 30)]))
    reading = observe(fleet, now, policy_settings()).reading
    assert (reading.visible, reading.in_flight, reading.running, reading.busy) == (3, 0, 2, 1)
    assert reading.booting_ages == (30.0,)
    assert reading.boot_seconds == pytest.approx(120, abs=2)  # launch → the worker's first report


def test_recent_uploads_count_only_images_that_need_a_worker(db, user):
    fresh = make_image(user, status="queued")
    make_image(user, status="done", reused_from=fresh)
    old = make_image(user, status="queued")
    Image.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(hours=2))

    count, last = recent_arrivals(timezone.now(), 600)

    assert count == 1 and last == Image.objects.get(pk=fresh.pk).queued_at


def test_each_pass_writes_one_event_holding_what_the_policy_was_given(backlog):
    backlog(25)
    fleet = FakeFleet()
    control = controller()

    one_pass(fleet, control)
    one_pass(fleet, control)

    first, second = ScalingEvent.objects.order_by("created_at", "id")
    assert (first.visible, first.target, first.booting, first.backend) == (25, 2, 0, "local")
    assert first.action == "launch 2: new-0, new-1"
    assert reading_from(first.reading).visible == 25
    assert (second.booting, second.target, second.action) == (2, 2, "nothing")
    assert fleet.launched == [2]


def test_identical_passes_are_folded_into_one_row(backlog):
    fleet = FakeFleet()
    control, start = controller(), timezone.now()
    for seconds in (0, 15, 30):
        one_pass(fleet, control, now=start + timedelta(seconds=seconds))
    event = ScalingEvent.objects.get()
    assert event.repeats == 3 and event.last_seen_at == start + timedelta(seconds=30)
    backlog(1)
    one_pass(fleet, control, now=start + timedelta(seconds=45))
    assert ScalingEvent.objects.count() == 2


def test_dry_runs_and_failed_passes_never_feed_the_history(backlog):
    backlog(5)
    fleet, start = FakeFleet(), timezone.now()
    one_pass(fleet, dry_run=True, now=start)
    ScalingEvent.objects.create(created_at=start, backend="local", reason="pass failed", error="boom",
                                reading={"visible": 9, "last_arrival_at": 1.0})
    assert history_from_events(start + timedelta(seconds=1), policy_settings()).last_active_at is None


def test_a_restarted_autoscaler_remembers_what_the_live_one_did(backlog):
    fleet, start = FakeFleet(), timezone.now()
    live = controller(max_nodes=4)
    backlog(3)
    one_pass(fleet, live, now=start)
    drain(settings.CLASSIFY_QUEUE)
    for seconds in (5, 10, 15, 30):
        one_pass(fleet, live, now=start + timedelta(seconds=seconds))
    rebuilt = history_from_events(start + timedelta(seconds=31), live.settings)
    assert rebuilt == live.history and rebuilt.last_active_at == start.timestamp()


def test_the_cap_holds_after_a_restart(backlog):
    """A restarted autoscaler finds more nodes than its max: it retires idle ones and never launches."""
    backlog(50)
    fleet = FakeFleet(node("a", age=40), node("b", age=30), node("c", age=20), node("d", BOOTING))
    make_busy("a", "b")

    one_pass(fleet)

    event = ScalingEvent.objects.get()
    assert event.target == 2 and event.busy == 2
    assert fleet.launched == [] and fleet.retired == [["d", "c"]]
    assert {n.id for n in fleet.list() if n.state != DRAINING} == {"a", "b"}


def test_the_cap_spares_busy_nodes_even_above_max(backlog):
    backlog(50)
    fleet = FakeFleet(node("a"), node("b"), node("c"))
    make_busy("a", "b", "c")

    one_pass(fleet, controller(max_nodes=1))

    assert fleet.retired == [] and fleet.launched == []
    assert "2 busy node(s) kept" in ScalingEvent.objects.get().action


def test_a_pass_keeps_pushing_draining_nodes(backlog):
    backlog(1)
    fleet = FakeFleet(node("a"), node("b", DRAINING))
    control = controller(max_nodes=1)

    one_pass(fleet, control)
    one_pass(fleet, control)

    assert fleet.retired == [["b"], ["b"]]
    assert ScalingEvent.objects.filter(draining=1).exists()


def test_a_dry_run_pass_changes_nothing_but_is_recorded(backlog):
    backlog(50)
    fleet = FakeFleet(node("a"), node("b"), node("c"), node("d", DRAINING))

    one_pass(fleet, dry_run=True)

    assert fleet.retired == fleet.launched == []
    event = ScalingEvent.objects.get()
    assert event.dry_run and event.target == 2 and event.action.startswith("retire ")


def test_the_next_pass_comes_sooner_while_nodes_boot(backlog):
    backlog(5)
    start = timezone.now()
    _, then = run_pass(FakeFleet(), "local", controller(), start, started=start)
    assert then == start + timedelta(seconds=settings.AUTOSCALE_BUSY_INTERVAL)
    drain(settings.CLASSIFY_QUEUE)
    _, then = run_pass(FakeFleet(), "local", controller(), start, started=start)
    assert then == start + timedelta(seconds=settings.AUTOSCALE_INTERVAL)


def test_a_recorded_real_run_decides_the_same_through_the_simulators_bookkeeping():
    """tests/scaling/data/real_run.json: the ScalingEvents of one `autoscale --backend local` run
    (tests/scaling/test_autoscale_local.py writes a new one to var/test/logs/ on every run)."""
    recorded = json.loads((Path(__file__).parent / "data" / "real_run.json").read_text())
    events = [ScalingEvent(created_at=datetime.fromisoformat(e["created_at"]),
                           last_seen_at=datetime.fromisoformat(e["last_seen_at"]), reading=e["reading"],
                           target=e["target"], reason=e["reason"], error=e["error"]) for e in recorded["events"]]
    decided = list(replay(events, Controller(PolicySettings(**recorded["settings"]))))
    assert len(decided) > len(events) > 5  # folded rows stand for several passes
    assert [(e.target, e.reason) for e, _ in decided] == [(d.target, d.reason) for _, d in decided]
    assert {e["action"].split(" ")[0] for e in recorded["events"]} >= {"launch", "retire", "nothing"}
