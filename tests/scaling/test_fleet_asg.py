"""The asg fleet against moto's in-process Auto Scaling (mock_aws): capacity, protection, the drain protocol."""
from datetime import timedelta

import boto3
import pytest
from django.utils import timezone
from moto import mock_aws

from scaling import autoscaler
from scaling.autoscaler import policy_settings, run_pass
from scaling.fleets import BOOTING, DRAINING, RUNNING
from scaling.fleets.asg import AsgFleet
from scaling.fleets.ec2 import DRAINING_TAG, tag_value
from scaling.models import ScalingEvent, WorkerNode
from scaling.policy import Controller
from tests.scaling.conftest import ec2_state, finish_tasks, start_worker

GROUP = "test-workers"


@pytest.fixture
def clients(monkeypatch):
    """EC2 and Auto Scaling clients on moto's in-process mock: the suite's AWS_ENDPOINT_URL must not apply."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        autoscaling = boto3.client("autoscaling", region_name="us-east-1")
        ec2.create_launch_template(LaunchTemplateName="worker",
                                   LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"})
        yield ec2, autoscaling


def create_group(autoscaling, name=GROUP, desired=0, max_size=10):
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": "worker"},
        MinSize=0, MaxSize=max_size, DesiredCapacity=desired, AvailabilityZones=["us-east-1a"],
    )


@pytest.fixture
def fleet(clients, db):
    ec2, autoscaling = clients
    create_group(autoscaling)
    return AsgFleet(autoscaling=autoscaling, ec2=ec2, group_name=GROUP, max_nodes=5)


def group(autoscaling, name=GROUP):
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def members(autoscaling, name=GROUP):
    return {member["InstanceId"]: member for member in group(autoscaling, name)["Instances"]}


def test_it_lists_the_group_instances_only(fleet, clients):
    ec2, autoscaling = clients
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    create_group(autoscaling, name="other-group", desired=1)
    launched = fleet.launch(2)
    start_worker(launched[0])

    nodes = {node.id: node.state for node in fleet.list()}

    assert sorted(nodes) == sorted(launched) == sorted(members(autoscaling))
    assert nodes == {launched[0]: RUNNING, launched[1]: BOOTING}


@pytest.mark.parametrize(("lifecycle", "expected"), [
    ("Pending", BOOTING), ("Pending:Wait", BOOTING), ("InService", BOOTING),
    ("Terminating", DRAINING), ("Terminating:Wait", DRAINING),
])
def test_a_lifecycle_state_maps_to_a_node_state(fleet, lifecycle, expected):
    instance = {"InstanceId": "i-1", "LifecycleState": lifecycle, "LaunchTime": timezone.now(), "Tags": []}
    assert fleet.node(instance, rows={}).state == expected


def test_launch_raises_the_desired_capacity(fleet, clients):
    _, autoscaling = clients

    launched = fleet.launch(2)

    assert group(autoscaling)["DesiredCapacity"] == 2
    assert sorted(launched) == sorted(members(autoscaling))


@pytest.mark.parametrize(("max_nodes", "max_size", "expected"), [(3, 10, 3), (10, 4, 4)])
def test_launch_is_clamped_by_max_nodes_and_by_max_size(clients, db, max_nodes, max_size, expected):
    ec2, autoscaling = clients
    create_group(autoscaling, desired=1, max_size=max_size)
    fleet = AsgFleet(autoscaling=autoscaling, ec2=ec2, group_name=GROUP, max_nodes=max_nodes)

    assert len(fleet.launch(10)) == expected - 1
    assert fleet.launch(1) == []

    assert group(autoscaling)["DesiredCapacity"] == expected


def test_it_protects_busy_instances_from_scale_in(fleet, clients):
    _, autoscaling = clients
    busy, idle = fleet.launch(2)
    start_worker(busy, busy=True)
    start_worker(idle)

    fleet.list()
    assert {i: m["ProtectedFromScaleIn"] for i, m in members(autoscaling).items()} == {busy: True, idle: False}

    finish_tasks(busy)
    fleet.list()
    assert not any(m["ProtectedFromScaleIn"] for m in members(autoscaling).values())


def test_it_drains_a_busy_node_then_removes_it_and_decrements_the_capacity(fleet, clients):
    ec2, autoscaling = clients
    busy, other = fleet.launch(2)
    start_worker(busy, busy=True)
    start_worker(other)
    now = timezone.now()

    assert fleet.retire([busy], now=now) == [busy]

    assert WorkerNode.objects.get(name=busy).draining
    assert group(autoscaling)["DesiredCapacity"] == 2 and busy in members(autoscaling)
    assert {node.id: node.state for node in fleet.list(now=now)} == {busy: DRAINING, other: RUNNING}

    finish_tasks(busy)
    WorkerNode.report_stopped(busy)
    assert fleet.retire([busy], now=now + timedelta(seconds=5)) == [busy]

    assert group(autoscaling)["DesiredCapacity"] == 1
    assert list(members(autoscaling)) == [other]  # removed, and not replaced
    assert ec2_state(ec2, busy) == "terminated"
    assert fleet.retire([busy]) == []  # gone: a later pass is a no-op


def test_retire_is_idempotent(fleet, clients):
    ec2, autoscaling = clients
    [node_id] = fleet.launch(1)
    start_worker(node_id, busy=True)
    asked_at = timezone.now()

    for seconds in (0, 5, 10):
        assert fleet.retire([node_id], now=asked_at + timedelta(seconds=seconds)) == [node_id]

    [node] = fleet.list()
    assert node.draining_since == asked_at
    assert group(autoscaling)["DesiredCapacity"] == 1 and ec2_state(ec2, node_id) == "running"


def test_it_never_touches_instances_outside_the_group(fleet, clients):
    ec2, autoscaling = clients
    loose = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    create_group(autoscaling, name="other-group", desired=1)
    [neighbour] = members(autoscaling, "other-group")

    assert fleet.retire([loose, neighbour, "i-0123456789abcdef0"]) == []

    assert ec2_state(ec2, loose) == ec2_state(ec2, neighbour) == "running"
    assert group(autoscaling, "other-group")["DesiredCapacity"] == 1
    assert tag_value(ec2.describe_instances(InstanceIds=[loose])["Reservations"][0]["Instances"][0],
                     DRAINING_TAG) is None
    assert not WorkerNode.objects.exists()


def test_the_drain_timeout_forces_a_protected_busy_node_out(fleet, clients, settings):
    _, autoscaling = clients
    settings.AUTOSCALE_DRAIN_TIMEOUT = 30
    [node_id] = fleet.launch(1)
    asked_at = timezone.now()
    start_worker(node_id, busy=True, at=asked_at)
    fleet.list(now=asked_at)
    fleet.retire([node_id], now=asked_at)
    assert members(autoscaling)[node_id]["ProtectedFromScaleIn"]

    past = asked_at + timedelta(seconds=31)
    WorkerNode.objects.filter(name=node_id).update(last_heartbeat=past)  # still beating, still busy
    fleet.retire([node_id], now=past)

    assert members(autoscaling) == {}
    assert group(autoscaling)["DesiredCapacity"] == 0


def test_the_cap_holds_after_a_restart(clients, db, monkeypatch):
    """A restarted autoscaler with a lower max finds 4 nodes: it drains idle ones, never launches."""
    ec2, autoscaling = clients
    monkeypatch.setattr(autoscaler, "queue_depth", lambda: {"visible": 500, "in_flight": 0, "delayed": 0})
    create_group(autoscaling, desired=4)
    now = timezone.now()
    busy, *idle = sorted(members(autoscaling))
    start_worker(busy, busy=True, at=now)
    for node_id in idle:
        start_worker(node_id, at=now)

    restarted = AsgFleet(autoscaling=autoscaling, ec2=ec2, group_name=GROUP, max_nodes=2)
    run_pass(restarted, "asg", Controller(policy_settings(min_nodes=0, max_nodes=2)), now)

    event = ScalingEvent.objects.get()
    assert event.target == 2 and "launch" not in event.action
    states = {node.id: node.state for node in restarted.list(now=now)}
    assert states[busy] == RUNNING and list(states.values()).count(DRAINING) == 2
    assert group(autoscaling)["DesiredCapacity"] == 4
    assert restarted.launch(3) == []  # desired 4 is above max 2: never raised

    for node_id, state in states.items():
        if state == DRAINING:
            WorkerNode.report_stopped(node_id)
    run_pass(restarted, "asg", Controller(policy_settings(min_nodes=0, max_nodes=2)), now + timedelta(seconds=15))

    assert group(autoscaling)["DesiredCapacity"] == 2
    assert busy in members(autoscaling) and len(members(autoscaling)) == 2
