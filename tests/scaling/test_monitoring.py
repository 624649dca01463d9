"""After each autoscaler pass: backlog per instance to CloudWatch (moto) and a Sentry check-in."""
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from moto import mock_aws

from classifier.models import Batch, Image
from scaling import monitoring
from scaling.models import ScalingEvent


@pytest.fixture
def cloudwatch(monkeypatch):
    """CloudWatch on moto's in-process mock: the suite's AWS_ENDPOINT_URL must not apply."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def queue_images(user, count):
    batch = Batch.objects.create(owner=user)
    Image.objects.bulk_create(Image(owner=user, batch=batch, original_name=f"{n}.jpg", size=1, sha256="0" * 64)
                              for n in range(count))


def published(cloudwatch, group):
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace="imgsite", MetricName="BacklogPerInstance", Statistics=["Maximum", "SampleCount"], Period=60,
        Dimensions=[{"Name": "AutoScalingGroupName", "Value": group}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1))
    return answer["Datapoints"]


def test_it_puts_backlog_per_instance_for_the_group(cloudwatch, user, settings):
    settings.ASG_NAME = "imgsite-workers"
    queue_images(user, 9)
    Image.objects.filter(pk=Image.objects.first().pk).update(status=Image.Status.PROCESSING)  # claimed: not waiting
    ScalingEvent.objects.create(backend="asg", booting=1, running=3, draining=2, target=4, reason="x")

    assert monitoring.publish_backlog_per_instance(cloudwatch) == 2.0  # 8 waiting ÷ 4 instances

    [point] = published(cloudwatch, "imgsite-workers")
    assert (point["Maximum"], point["SampleCount"]) == (2.0, 1)
    listed = cloudwatch.list_metrics(Namespace="imgsite")["Metrics"]
    assert [(m["MetricName"], m["Dimensions"]) for m in listed] == [
        ("BacklogPerInstance", [{"Name": "AutoScalingGroupName", "Value": "imgsite-workers"}])]


def test_with_no_instance_the_whole_backlog_is_published(cloudwatch, user):
    queue_images(user, 5)
    assert monitoring.backlog_per_instance() == 5.0  # so that target tracking scales out from zero
    ScalingEvent.objects.create(backend="asg", running=5, target=5, reason="x")
    ScalingEvent.objects.create(backend="asg", target=5, reason="pass failed", error="Throttling")
    assert monitoring.backlog_per_instance() == 1.0  # a failed pass saw no fleet: the last real one counts


def test_report_pass_publishes_only_for_the_asg_backend_when_asked(db, settings, monkeypatch):
    calls = []
    monkeypatch.setattr(monitoring, "publish_backlog_per_instance", lambda: calls.append("put"))
    settings.SENTRY_DSN = ""

    settings.AUTOSCALE_CLOUDWATCH_METRIC = False
    monitoring.report_pass("asg", ok=True, interval=15)
    settings.AUTOSCALE_CLOUDWATCH_METRIC = True
    monitoring.report_pass("ec2", ok=True, interval=15)
    monitoring.report_pass("asg", ok=False, interval=15)
    assert calls == []
    monitoring.report_pass("asg", ok=True, interval=15)
    assert calls == ["put"]


def test_a_failing_put_never_stops_the_loop(db, settings, monkeypatch, caplog):
    def throttled():
        raise ConnectionError("CloudWatch is throttling")

    monkeypatch.setattr(monitoring, "publish_backlog_per_instance", throttled)
    settings.AUTOSCALE_CLOUDWATCH_METRIC, settings.SENTRY_DSN = True, ""

    monitoring.report_pass("asg", ok=True, interval=15)

    assert "could not report the autoscaler pass: CloudWatch is throttling" in caplog.text


def test_check_ins_go_once_a_minute_or_when_the_outcome_changes(settings, monkeypatch):
    sent = []
    monkeypatch.setattr("imgsite.sentry.check_in", lambda monitor, ok, interval: sent.append((monitor, ok)))
    monkeypatch.setattr(monitoring, "last_check_in", {"at": None, "ok": None})
    clock = iter([0, 15, 30, 45, 91, 100])

    outcomes = [True, True, False, False, False, True]
    for ok in outcomes:
        monitoring.check_in(ok, 15, now=lambda: next(clock))

    # 0 s first; 15 s same, too soon; 30 s failed; 45 s too soon; 91 s still failing, a minute on; 100 s recovered.
    assert sent == [("imgsite-autoscaler", ok) for ok in (True, False, False, True)]


def test_the_autoscale_loop_reports_each_pass(db, settings, monkeypatch):
    reports = []
    monkeypatch.setattr("scaling.management.commands.autoscale.report_pass",
                        lambda backend, ok, interval: reports.append((backend, ok, interval)))
    def sqs_down(*args, **kwargs):
        raise ConnectionError("SQS down")

    monkeypatch.setattr("scaling.management.commands.autoscale.run_pass", sqs_down)
    with pytest.raises(CommandError, match="SQS down"):
        call_command("autoscale", "--once", "--dry-run", "--backend", "local", "--interval", "7")

    assert reports == [("local", False, 7.0)]
