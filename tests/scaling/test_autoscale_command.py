"""The autoscale loop under faults: each is logged and recorded, the loop goes on (with backoff),
and the pass after it scales as usual; and only one copy scales at a time."""
import logging
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone

from scaling import autoscaler
from scaling.fleets import RUNNING, Node
from scaling.fleets.ec2 import Ec2Fleet
from scaling.management.commands import autoscale
from scaling.models import Lease, ScalingEvent

pytestmark = pytest.mark.django_db(transaction=True)  # the loop calls close_old_connections()


class FakeFleet:
    def __init__(self, nodes=()):
        self.nodes = list(nodes)
        self.launched = 0

    def list(self):
        return list(self.nodes)

    def launch(self, count):
        self.launched += count
        return [f"n{i}" for i in range(count)]

    def retire(self, node_ids):
        return list(node_ids)


def run_loop(monkeypatch, fleet, passes, sweeps=None, **options):
    """Run the real command loop for `passes` passes; returns the sleeps it asked for."""
    sleeps = []

    def fake_sleep(command, seconds):
        sleeps.append(round(seconds))
        command.stopping = len(sleeps) >= passes

    monkeypatch.setattr(autoscale, "get_fleet", lambda backend, max_nodes=None: fleet)
    monkeypatch.setattr(autoscale.Command, "sleep", fake_sleep)
    monkeypatch.setattr(autoscale, "sweep", lambda: (sweeps if sweeps is not None else []).append(1))
    command = autoscale.Command()
    defaults = dict(backend="local", min_nodes=0, max_nodes=3, interval=10, once=False, dry_run=False,
                    retire_on_exit=False)
    command.handle(**{**defaults, **options})
    return sleeps


def failing_once(error, then):
    calls = []

    def call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return then(*args, **kwargs)

    return call


def throttled():
    return ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetQueueAttributes")


def test_it_logs_sqs_throttling_records_it_and_goes_on_with_backoff(monkeypatch, aws, empty_queues, caplog):
    from scaling import autoscaler

    monkeypatch.setattr(autoscaler, "queue_depth", failing_once(throttled(), autoscaler.queue_depth))
    sweeps = []
    with caplog.at_level(logging.ERROR):
        sleeps = run_loop(monkeypatch, FakeFleet(), passes=3, sweeps=sweeps)

    assert "autoscaler pass failed (1 in a row)" in caplog.text
    failed, *passes = ScalingEvent.objects.order_by("created_at", "id")
    assert "Throttling" in failed.error and failed.reason == "pass failed"
    assert sum(event.repeats for event in passes) == 2 and not any(event.error for event in passes)
    assert sleeps == [20, 10, 10]
    assert len(sweeps) == 3  # the sweeper ran on the failed pass too


def test_once_exits_non_zero_when_the_pass_fails_and_still_sweeps(monkeypatch, aws, empty_queues):
    from scaling import autoscaler

    monkeypatch.setattr(autoscaler, "queue_depth", failing_once(throttled(), autoscaler.queue_depth))
    sweeps = []
    with pytest.raises(CommandError, match="the autoscaler pass failed"):
        run_loop(monkeypatch, FakeFleet(), passes=1, sweeps=sweeps, once=True)
    assert ScalingEvent.objects.get().error and sweeps == [1]


def test_once_exits_zero_after_a_good_pass(monkeypatch, aws, empty_queues):
    monkeypatch.setattr(autoscale, "get_fleet", lambda backend, max_nodes=None: FakeFleet())
    monkeypatch.setattr(autoscale, "sweep", lambda: None)
    call_command("autoscale", "--once", "--backend", "local")
    assert not ScalingEvent.objects.get().error
    assert Lease.objects.get().holder == ""  # released on exit


def test_a_second_copy_waits_for_the_lease(monkeypatch, aws, empty_queues, caplog):
    Lease.objects.create(name="autoscaler", holder="other-host:42", expires_at=timezone.now() + timedelta(minutes=5))
    fleet = FakeFleet()
    with caplog.at_level(logging.WARNING):
        sleeps = run_loop(monkeypatch, fleet, passes=2)

    assert "another autoscaler (other-host:42) holds the lease" in caplog.text
    assert sleeps == [10, 10] and not ScalingEvent.objects.exists() and fleet.launched == 0
    with pytest.raises(CommandError, match="other-host:42"):
        run_loop(monkeypatch, fleet, passes=1, once=True)


def test_an_expired_lease_is_taken_over(monkeypatch, aws, empty_queues):
    Lease.objects.create(name="autoscaler", holder="crashed:1", expires_at=timezone.now() - timedelta(seconds=1))
    run_loop(monkeypatch, FakeFleet(), passes=1, once=True)
    assert ScalingEvent.objects.count() == 1


def test_a_dry_run_needs_no_lease(monkeypatch, aws, empty_queues):
    Lease.objects.create(name="autoscaler", holder="other-host:42", expires_at=timezone.now() + timedelta(minutes=5))
    run_loop(monkeypatch, FakeFleet(), passes=1, once=True, dry_run=True)
    assert ScalingEvent.objects.get().dry_run


def test_it_survives_the_database_being_unreachable_for_a_pass(monkeypatch, aws, empty_queues, caplog):
    monkeypatch.setattr(autoscaler, "open_images", failing_once(OperationalError("connection refused"), lambda: 0))
    with caplog.at_level(logging.ERROR):
        run_loop(monkeypatch, FakeFleet(), passes=2)

    assert "connection refused" in caplog.text
    assert ScalingEvent.objects.filter(error="").count() == 1
    assert "connection refused" in ScalingEvent.objects.exclude(error="").get().error


def test_it_survives_ec2_server_errors_and_never_exceeds_max(monkeypatch, aws, empty_queues, caplog, settings):
    settings.AUTOSCALE_MAX_NODES = 2
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(ec2)
    stubber.add_client_error("describe_instances", "InternalError", http_status_code=500)
    stubber.add_client_error("describe_instances", "RequestLimitExceeded", http_status_code=503)
    stubber.activate()
    with caplog.at_level(logging.ERROR):
        run_loop(monkeypatch, Ec2Fleet(ec2=ec2), passes=2, backend="ec2", max_nodes=2)

    assert caplog.text.count("autoscaler pass failed") == 2
    assert "RequestLimitExceeded" in caplog.text
    assert ScalingEvent.objects.exclude(error="").count() == 2
    stubber.assert_no_pending_responses()


def test_a_restart_above_max_retires_down_to_max_and_launches_nothing(monkeypatch, aws, empty_queues):
    nodes = [Node(f"n{i}", RUNNING, timezone.now()) for i in range(5)]
    fleet = FakeFleet(nodes)
    run_loop(monkeypatch, fleet, passes=1, max_nodes=3, once=True)

    event = ScalingEvent.objects.get()
    assert event.target == 3 and fleet.launched == 0
    assert event.action.startswith("retire") and event.action.count("n") >= 2
