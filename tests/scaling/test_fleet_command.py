"""manage.py fleet: the queue and the fleet as the autoscaler (and the admin's worker-nodes page) see them."""
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from classifier.models import Batch, Image
from scaling.models import ScalingEvent, WorkerNode
from scaling.overview import overview_json
from tests.scaling.conftest import start_task

DEPTH = {"visible": 2, "in_flight": 1, "delayed": 0}


@pytest.fixture
def fleet(db, user, monkeypatch):
    """A fixed moment, a queue, four nodes in four states and two decisions."""
    now = timezone.now()
    monkeypatch.setattr("django.utils.timezone.now", lambda: now)
    monkeypatch.setattr("scaling.overview.queue_depth", lambda: DEPTH)
    batch = Batch.objects.create(owner=user)
    Image.objects.bulk_create(Image(owner=user, batch=batch, original_name=f"{n}.jpg", size=1, sha256="0" * 64,
                                    sent_at=now) for n in range(6))
    WorkerNode.objects.create(name="i-busy", last_heartbeat=now - timedelta(seconds=3))
    start_task("i-busy")
    WorkerNode.objects.create(name="i-idle", last_heartbeat=now - timedelta(seconds=1))
    WorkerNode.objects.create(name="i-drain", draining=True, last_heartbeat=now)
    WorkerNode.objects.create(name="i-silent", last_heartbeat=now - timedelta(minutes=5))
    WorkerNode.objects.create(name="i-old", stopped_at=now - timedelta(days=1))
    ScalingEvent.objects.create(created_at=now - timedelta(seconds=30), backend="asg", visible=4, target=2,
                                reason="backlog of 4 images", action="launch 1")
    ScalingEvent.objects.create(created_at=now, backend="asg", target=2, reason="pass failed", error="Throttling\nx")
    return now


def fleet_json(*args):
    out = StringIO()
    call_command("fleet", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_fleet_json_matches_the_admin_worker_nodes_page(fleet, admin_client):
    response = admin_client.get(reverse("admin:scaling_workernode_changelist"))

    assert fleet_json() == overview_json(response.context["fleet"])


def test_fleet_json_shows_the_queue_the_nodes_and_the_decisions(fleet):
    shown = fleet_json()

    assert shown["messages"] == DEPTH and shown["depth"] == {"visible": 4, "in_flight": 2, "delayed": 0}
    assert shown["open_images"] == 6 and shown["outbox"] == 0 and shown["error"] == ""
    nodes = {node["name"]: node for node in shown["nodes"]}
    assert set(nodes) == {"i-busy", "i-idle", "i-drain", "i-silent"}  # a stopped node is history
    assert [nodes[name]["state"] for name in ("i-busy", "i-idle", "i-drain", "i-silent")] == [
        "busy", "idle", "draining", "silent"]
    assert (nodes["i-busy"]["heartbeat_age"], nodes["i-busy"]["running_tasks"]) == (3.0, 1)
    assert (shown["alive"], shown["busy"]) == (3, 1)
    assert [event["reason"] for event in shown["events"]] == ["pass failed", "backlog of 4 images"]
    assert shown["events"][1]["created_at"] == (fleet - timedelta(seconds=30)).isoformat()


def test_fleet_prints_a_table_for_people(fleet):
    out = StringIO()
    call_command("fleet", "--events", "1", stdout=out)
    lines = out.getvalue().splitlines()

    assert lines[0] == "Queue (images): 4 visible, 2 in flight, 0 delayed, 0 in the outbox; 6 open"
    assert lines[1].startswith("Workers: 3 alive, 1 busy;")
    assert any(line.split() == ["i-busy", "busy", "1", "3.0", "s"] for line in lines)
    decisions = [line for line in lines if "pass failed" in line]
    assert len(decisions) == 1 and decisions[0].endswith("ERROR x")
    assert not any("backlog of 4 images" in line for line in lines)  # --events 1


def test_fleet_says_when_sqs_is_unreachable(db, monkeypatch):
    def unreachable():
        raise ConnectionError("endpoint down")

    monkeypatch.setattr("scaling.overview.queue_depth", unreachable)
    out = StringIO()
    call_command("fleet", stdout=out)
    assert "Queue depth unavailable: endpoint down" in out.getvalue()
    assert fleet_json()["depth"] is None
