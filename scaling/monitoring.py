"""What the autoscaler tells the outside after each pass: backlog per instance to CloudWatch, for an
Auto Scaling target-tracking policy (AUTOSCALE_CLOUDWATCH_METRIC), and a Sentry cron check-in
(SENTRY_DSN). The loop calls report_pass() once per pass; nothing here may stop the loop."""
import logging
import time

from django.conf import settings

from classifier.models import Image
from imgsite.aws import client
from scaling.models import ScalingEvent

log = logging.getLogger(__name__)

MONITOR = "imgsite-autoscaler"
METRIC = "BacklogPerInstance"
# A check-in per pass would be one every few seconds; Sentry's schedule is in minutes.
CHECK_IN_EVERY = 60
last_check_in = {"at": None, "ok": None}


def backlog_per_instance():
    """Images waiting for a worker, per instance of the group booting or running as the autoscaler
    last saw it (AWS's recipe for SQS workers, counted in images). With no instance, the whole
    backlog, so that a target-tracking policy also scales out from zero."""
    latest = ScalingEvent.objects.filter(error="").first()
    instances = latest.booting + latest.running if latest else 0
    waiting = Image.objects.filter(status=Image.Status.QUEUED).count()
    return waiting / max(instances, 1)


def publish_backlog_per_instance(cloudwatch=None):
    """PutMetricData imgsite/BacklogPerInstance (AutoScalingGroupName=ASG_NAME); returns the value."""
    value = backlog_per_instance()
    (cloudwatch or client("cloudwatch")).put_metric_data(
        Namespace=settings.CLOUDWATCH_NAMESPACE,
        MetricData=[{"MetricName": METRIC, "Dimensions": [{"Name": "AutoScalingGroupName", "Value": settings.ASG_NAME}],
                     "Value": value, "Unit": "Count"}],
    )
    return value


def check_in(ok, interval, now=time.monotonic):
    """A Sentry cron check-in, at most once a minute unless the outcome changed."""
    moment = now()
    if last_check_in["ok"] == ok and last_check_in["at"] is not None and moment - last_check_in["at"] < CHECK_IN_EVERY:
        return False
    from imgsite.sentry import check_in as sentry_check_in  # sentry_sdk is imported only when configured

    sentry_check_in(MONITOR, ok, interval)
    last_check_in.update(at=moment, ok=ok)
    return True


def report_pass(backend, ok, interval):
    """After each autoscaler pass (`ok` False when it failed): publish and check in, as configured."""
    try:
        if ok and backend == "asg" and settings.AUTOSCALE_CLOUDWATCH_METRIC:
            publish_backlog_per_instance()
        if settings.SENTRY_DSN:
            check_in(ok, interval)
    except Exception as exc:  # monitoring must never stop the scaling it watches
        log.warning("could not report the autoscaler pass: %s", exc)
