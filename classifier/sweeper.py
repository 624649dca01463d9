"""Making sure no image waits forever: dead-lettered messages and stale images.

A message that crashed its worker maxReceiveCount times lands in the dead-letter
queue; its images are failed. An image whose message was lost (a local SQS restarted,
a queue purged) is re-queued once, and failed if it stalls again.
"""
import base64
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from classifier.models import Image
from classifier.tasks import requeue
from imgsite.aws import client, queue_url
from imgsite.queue import queue_depth

log = logging.getLogger(__name__)

GAVE_UP = ("gave_up", "Gave up after {attempts} attempts: the worker crashed or timed out every time.")
STALLED = ("stalled", "Stalled twice without finishing; gave up.")


@dataclass
class SweepReport:
    dead_lettered: int = 0
    requeued: int = 0
    failed: int = 0


def image_ids_in(body):
    """The image ids of a Celery task message as kombu puts it on SQS (base64 or plain JSON)."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = json.loads(base64.b64decode(body))
    payload = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        payload = base64.b64decode(payload)
    args = json.loads(payload)[0]
    return [int(image_id) for image_id in args[0]]


def fail_dead_letters(limit=100):
    """Fail the images of every dead-lettered message, then delete the message."""
    sqs = client("sqs")
    url = queue_url(settings.DEAD_LETTER_QUEUE)
    failed = 0
    for _ in range(0, limit, 10):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=settings.SQS_VISIBILITY_TIMEOUT).get("Messages", [])
        if not messages:
            break
        for message in messages:
            try:
                ids = image_ids_in(message["Body"])
            except (ValueError, KeyError, IndexError, TypeError):
                log.warning("dead letter %s is not an imgsite task; left for an operator", message["MessageId"])
                continue
            failed += fail_exhausted(ids)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return failed


def fail_exhausted(ids):
    """Fail the unfinished images among `ids`, one UPDATE per distinct reason."""
    by_reason = {}
    for image_id, attempts in Image.objects.filter(id__in=ids).values_list("id", "attempts"):
        reason = GAVE_UP[1].format(attempts=max(attempts, settings.MAX_RECEIVE_COUNT))
        by_reason.setdefault(reason, []).append(image_id)
    return sum(Image.objects.fail(image_ids, GAVE_UP[0], reason) for reason, image_ids in by_reason.items())


def queue_is_empty():
    return not any(queue_depth().values())


def sweep_stale(now):
    """Re-queue lost images once; fail those that were already re-queued."""
    stale = list(Image.objects.stale(now, queue_is_empty).values_list("id", "requeues"))
    again = [image_id for image_id, requeues in stale if requeues]
    first = [image_id for image_id, requeues in stale if not requeues]
    failed = Image.objects.fail(again, *STALLED) if again else 0
    return requeue(first), failed


def sweep(now=None):
    """One pass of both sweeps; the autoscaler runs this on every tick too."""
    report = SweepReport(dead_lettered=fail_dead_letters())
    report.requeued, report.failed = sweep_stale(now or timezone.now())
    if report.dead_lettered or report.requeued or report.failed:
        log.info("sweep: %s", report)
    return report
