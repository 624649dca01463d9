"""One autoscaler pass with an in-memory fleet and the suite's moto SQS: what act() asks of the fleet."""
from dataclasses import replace
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from imgsite.aws import client, queue_url
from scaling.autoscaler import Snapshot, act, nodes_to_retire, policy_settings, run_pass
from scaling.fleets import BOOTING, DRAINING, RUNNING, Node
from scaling.models import ScalingEvent
from scaling.policy import History
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


def snapshot(nodes, busy=()):
    return Snapshot(depth={"visible": 0, "in_flight": 0, "delayed": 0}, nodes=list(nodes), busy=set(busy),
                    seconds_per_image=None, last_finished_at=None)


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


def one_pass(fleet, max_nodes=2, dry_run=False, now=None):
    return run_pass(fleet, "local", History(), policy_settings(min_nodes=0, max_nodes=max_nodes),
                    now or timezone.now(), dry_run=dry_run)


def test_nodes_to_retire_never_chooses_a_busy_node():
    nodes = [node("a", age=30), node("b", age=20), node("c", BOOTING)]
    assert nodes_to_retire(snapshot(nodes, busy={"a", "b", "c"}), 2) == []
    assert nodes_to_retire(snapshot(nodes, busy={"a"}), 3) == ["b", "c"]


def test_nodes_to_retire_takes_idle_running_nodes_first_then_booting_ones():
    nodes = [node("booting", BOOTING, age=50), node("young", age=10), node("old", age=40), node("gone", DRAINING)]
    assert nodes_to_retire(snapshot(nodes), 3) == ["old", "young", "booting"]


def test_act_launches_the_difference():
    fleet = FakeFleet(node("a"))
    action = act(fleet, snapshot(fleet.list()), target=3, dry_run=False)
    assert fleet.launched == [2] and action.startswith("launch 2")


def test_act_never_retires_a_busy_node_and_says_so():
    fleet = FakeFleet(node("a"), node("b"), node("c"))
    action = act(fleet, snapshot(fleet.list(), busy={"a", "b"}), target=0, dry_run=False)
    assert fleet.retired == [["c"]]
    assert action == "retire c; 2 busy node(s) protected"


def test_act_pushes_draining_nodes_along_while_holding():
    fleet = FakeFleet(node("a"), node("b", DRAINING))
    action = act(fleet, snapshot(fleet.list()), target=1, dry_run=False)
    assert fleet.retired == [["b"]] and fleet.launched == []
    assert action == "nothing"


def test_act_in_dry_run_changes_nothing():
    fleet = FakeFleet(node("a"), node("b"), node("c", DRAINING))
    assert act(fleet, snapshot(fleet.list()), target=0, dry_run=True) == "retire a, b"
    assert act(fleet, snapshot(fleet.list()), target=5, dry_run=True) == "launch 3"
    assert fleet.retired == fleet.launched == []


def test_each_pass_writes_one_scaling_event(backlog):
    backlog(25)
    fleet = FakeFleet()

    one_pass(fleet, max_nodes=2)
    one_pass(fleet, max_nodes=2)

    first, second = ScalingEvent.objects.order_by("created_at", "id")
    assert (first.visible, first.target, first.booting, first.backend) == (25, 2, 0, "local")
    assert first.action == "launch 2: new-0, new-1"
    assert (second.booting, second.target, second.action) == (2, 2, "nothing")
    assert fleet.launched == [2]


def test_the_cap_holds_after_a_restart(backlog):
    """A restarted autoscaler finds more nodes than its max: it retires idle ones and never launches."""
    backlog(50)
    fleet = FakeFleet(node("a", age=40), node("b", age=30), node("c", age=20), node("d", BOOTING))
    make_busy("a", "b")

    one_pass(fleet, max_nodes=2)

    event = ScalingEvent.objects.get()
    assert event.target == 2 and event.busy == 2
    assert fleet.launched == [] and fleet.retired == [["c", "d"]]
    assert {n.id for n in fleet.list() if n.state != DRAINING} == {"a", "b"}


def test_the_cap_spares_busy_nodes_even_above_max(backlog):
    backlog(50)
    fleet = FakeFleet(node("a"), node("b"), node("c"))
    make_busy("a", "b", "c")

    one_pass(fleet, max_nodes=1)

    assert fleet.retired == [] and fleet.launched == []
    assert "2 busy node(s) protected" in ScalingEvent.objects.get().action


def test_a_pass_keeps_pushing_draining_nodes(backlog):
    backlog(10)
    fleet = FakeFleet(node("a"), node("b", DRAINING))

    one_pass(fleet, max_nodes=1)
    one_pass(fleet, max_nodes=1)

    assert fleet.retired == [["b"], ["b"]]
    assert ScalingEvent.objects.filter(draining=1).count() == 2


def test_a_dry_run_pass_changes_nothing_but_is_recorded(backlog):
    backlog(50)
    fleet = FakeFleet(node("a"), node("b"), node("c"), node("d", DRAINING))

    one_pass(fleet, max_nodes=2, dry_run=True)

    assert fleet.retired == fleet.launched == []
    event = ScalingEvent.objects.get()
    assert event.dry_run and event.target == 2 and event.action.startswith("retire ")
