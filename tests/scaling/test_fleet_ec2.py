"""The ec2 fleet against moto's in-process EC2 (mock_aws): tags, launch parameters, the drain protocol."""
from datetime import timedelta

import boto3
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from moto import mock_aws

from scaling import autoscaler
from scaling.autoscaler import policy_settings, run_pass
from scaling.fleets import BOOTING, DRAINING, RUNNING
from scaling.fleets.ec2 import DRAINING_TAG, FLEET_TAG, Ec2Fleet, tag_value
from scaling.models import ScalingEvent, WorkerNode
from scaling.policy import Controller
from tests.scaling.conftest import describe, ec2_state, finish_tasks, start_worker

AMI = "ami-12c6146b"


@pytest.fixture
def ec2(monkeypatch, settings):
    """An EC2 client on moto's in-process mock: the suite's AWS_ENDPOINT_URL must not apply."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.FLEET_NAME = "test-fleet"
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        ec2.create_launch_template(LaunchTemplateName="test-fleet", LaunchTemplateData={"ImageId": AMI})
        settings.EC2_LAUNCH_TEMPLATE = "test-fleet"
        yield ec2


@pytest.fixture
def fleet(ec2, db):
    return Ec2Fleet(ec2=ec2)


def outsider(ec2, tags=()):
    """An instance this fleet does not own: untagged, or tagged for another fleet."""
    tag_specs = [{"ResourceType": "instance", "Tags": list(tags)}] if tags else []
    return ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=tag_specs)["Instances"][0][
        "InstanceId"]


def states(fleet):
    return {node.id: node.state for node in fleet.list()}


@pytest.mark.parametrize("by", ["name", "id"])
def test_it_launches_from_a_launch_template(fleet, ec2, settings, by):
    template = ec2.create_launch_template(
        LaunchTemplateName="worker", LaunchTemplateData={"ImageId": "ami-0template", "InstanceType": "t3.small"},
    )["LaunchTemplate"]
    settings.EC2_LAUNCH_TEMPLATE = template["LaunchTemplateName" if by == "name" else "LaunchTemplateId"]

    [node_id] = fleet.launch(1)

    instance = describe(ec2, node_id)
    assert (instance["ImageId"], instance["InstanceType"]) == ("ami-0template", "t3.small")
    assert tag_value(instance, FLEET_TAG) == "test-fleet"


def test_it_refuses_to_launch_without_a_template(fleet, settings):
    settings.EC2_LAUNCH_TEMPLATE = ""
    with pytest.raises(ImproperlyConfigured, match="EC2_LAUNCH_TEMPLATE"):
        fleet.launch(1)


def test_it_lists_only_instances_carrying_its_tag(fleet, ec2):
    untagged = outsider(ec2)
    foreign = outsider(ec2, [{"Key": FLEET_TAG, "Value": "someone-else"}])
    ours = fleet.launch(1) + fleet.launch(1)

    nodes = fleet.list()

    assert sorted(node.id for node in nodes) == sorted(ours)
    assert untagged not in ours and foreign not in ours


def test_it_never_terminates_untagged_or_foreign_instances(fleet, ec2):
    untagged = outsider(ec2)
    foreign = outsider(ec2, [{"Key": FLEET_TAG, "Value": "someone-else"}])
    named_like_us = outsider(ec2, [{"Key": "Name", "Value": "test-fleet-worker"}])

    acted = fleet.retire([untagged, foreign, named_like_us, "i-0123456789abcdef0"])
    fleet.retire([untagged, foreign, named_like_us])

    assert acted == []
    for node_id in (untagged, foreign, named_like_us):
        assert ec2_state(ec2, node_id) == "running"
        assert tag_value(describe(ec2, node_id), DRAINING_TAG) is None
    assert not WorkerNode.objects.exists()


def test_a_node_is_booting_until_its_worker_reports(fleet):
    [node_id] = fleet.launch(1)
    assert states(fleet) == {node_id: BOOTING}

    start_worker(node_id)
    assert states(fleet) == {node_id: RUNNING}

    WorkerNode.report_stopped(node_id)
    assert states(fleet) == {node_id: BOOTING}


@pytest.mark.parametrize(("ec2_state", "expected"), [
    ("pending", BOOTING), ("running", BOOTING), ("stopping", DRAINING), ("shutting-down", DRAINING),
])
def test_an_instance_state_maps_to_a_node_state(fleet, ec2_state, expected):
    instance = {"InstanceId": "i-1", "State": {"Name": ec2_state}, "LaunchTime": timezone.now(), "Tags": []}
    assert fleet.node(instance, rows={}).state == expected


def test_a_stopped_instance_is_draining_and_then_terminated(fleet, ec2):
    [node_id] = fleet.launch(1)
    start_worker(node_id)
    ec2.stop_instances(InstanceIds=[node_id])
    WorkerNode.objects.filter(name=node_id).update(last_heartbeat=timezone.now() - timedelta(hours=1))

    assert states(fleet) == {node_id: DRAINING}
    fleet.retire([node_id])
    assert ec2_state(ec2, node_id) == "terminated"


def test_a_node_asked_to_drain_is_draining(fleet):
    [node_id] = fleet.launch(1)
    start_worker(node_id)
    WorkerNode.ask_to_drain([node_id])
    assert states(fleet) == {node_id: DRAINING}


def test_it_terminates_a_node_that_never_started_a_worker_at_once(fleet, ec2):
    [node_id] = fleet.launch(1)

    assert fleet.retire([node_id]) == [node_id]

    assert ec2_state(ec2, node_id) in ("shutting-down", "terminated")
    assert fleet.list() == []  # moto terminates at once; on AWS it lists as draining until gone
    assert not WorkerNode.objects.exists()


def test_a_busy_node_finishes_its_task_before_it_is_terminated(fleet, ec2):
    [node_id] = fleet.launch(1)
    start_worker(node_id, busy=True)
    now = timezone.now()

    assert fleet.retire([node_id], now=now) == [node_id]

    assert ec2_state(ec2, node_id) == "running"
    assert WorkerNode.objects.get(name=node_id).draining
    [node] = fleet.list()
    assert node.state == DRAINING and node.draining_since == now

    finish_tasks(node_id)
    WorkerNode.report_stopped(node_id)  # the heartbeat saw `draining`: warm shutdown
    fleet.retire([node_id], now=now + timedelta(seconds=5))

    assert ec2_state(ec2, node_id) in ("shutting-down", "terminated")
    assert not WorkerNode.objects.filter(name=node_id).exists()


def test_retire_is_idempotent(fleet, ec2):
    [node_id] = fleet.launch(1)
    start_worker(node_id, busy=True)
    asked_at = timezone.now()

    for seconds in (0, 5, 10):
        assert fleet.retire([node_id], now=asked_at + timedelta(seconds=seconds)) == [node_id]

    [node] = fleet.list()
    assert node.draining_since == asked_at
    assert ec2_state(ec2, node_id) == "running"


def test_it_asks_again_when_a_restarted_worker_forgot_to_drain(fleet, ec2):
    [node_id] = fleet.launch(1)
    start_worker(node_id)
    fleet.retire([node_id])
    start_worker(node_id)  # report_started resets `draining`

    assert states(fleet) == {node_id: DRAINING}  # the instance's tag remembers
    fleet.retire([node_id])
    assert WorkerNode.objects.get(name=node_id).draining
    assert ec2_state(ec2, node_id) == "running"


def test_a_node_whose_heartbeat_went_stale_is_terminated(fleet, ec2, settings):
    [node_id] = fleet.launch(1)
    now = timezone.now()
    start_worker(node_id, busy=True, at=now)
    fleet.retire([node_id], now=now)

    fleet.retire([node_id], now=now + timedelta(seconds=settings.WORKER_STALE_SECONDS + 1))

    assert ec2_state(ec2, node_id) in ("shutting-down", "terminated")


def test_the_drain_timeout_forces_termination_of_a_busy_node(fleet, ec2, settings):
    settings.AUTOSCALE_DRAIN_TIMEOUT = 30
    [node_id] = fleet.launch(1)
    asked_at = timezone.now()
    start_worker(node_id, busy=True, at=asked_at)
    fleet.retire([node_id], now=asked_at)

    just_before = asked_at + timedelta(seconds=30)
    WorkerNode.objects.filter(name=node_id).update(last_heartbeat=just_before)  # still beating, still busy
    fleet.retire([node_id], now=just_before)
    assert ec2_state(ec2, node_id) == "running"

    past = asked_at + timedelta(seconds=31)
    WorkerNode.objects.filter(name=node_id).update(last_heartbeat=past)
    fleet.retire([node_id], now=past)
    assert ec2_state(ec2, node_id) in ("shutting-down", "terminated")


def test_the_cap_holds_after_a_restart(fleet, ec2, monkeypatch):
    """A restarted autoscaler with a lower max finds 3 nodes: it drains idle ones, never launches."""
    monkeypatch.setattr(autoscaler, "queue_depth", lambda: {"visible": 500, "in_flight": 0, "delayed": 0})
    launched = fleet.launch(1) + fleet.launch(1) + fleet.launch(1)
    now = timezone.now()
    start_worker(launched[0], busy=True, at=now)
    start_worker(launched[1], at=now)
    start_worker(launched[2], at=now)

    restarted = Ec2Fleet(ec2=ec2)
    run_pass(restarted, "ec2", Controller(policy_settings(min_nodes=0, max_nodes=2)), now)

    event = ScalingEvent.objects.get()
    assert event.target == 2 and "launch" not in event.action
    after = states(restarted)
    assert after[launched[0]] == RUNNING  # busy: never chosen
    [retired] = [node_id for node_id, state in after.items() if state == DRAINING]
    WorkerNode.report_stopped(retired)

    run_pass(restarted, "ec2", Controller(policy_settings(min_nodes=0, max_nodes=2)), now + timedelta(seconds=15))

    assert sorted(node.id for node in restarted.list()) == sorted(set(launched) - {retired})
    assert len(ec2.describe_instances()["Reservations"]) == 3  # nothing new was launched
