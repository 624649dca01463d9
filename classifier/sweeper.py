"""Making sure no image waits forever: dead-lettered messages, lost messages, the outbox.

A message that crashed its worker MAX_RECEIVE_COUNT times lands in the dead-letter queue;
its images are failed. An image whose message was lost (a local SQS restarted, a queue
purged, a send that never arrived) goes back to the outbox and is sent again, whatever the
queue's depth; its attempts are kept, so the claim's cap still ends a loop. The autoscaler
runs a sweep on every tick (`manage.py sweep` runs one).
"""
import base64
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from classifier.models import GAVE_UP, Batch, Image
from classifier.orphans import sweep_orphans_step
from classifier.tasks import dispatch
from imgsite.aws import client, queue_url

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    dead_lettered: int = 0
    resent: int = 0
    dispatched: int = 0
    orphans: int = 0
    empty_batches: int = 0


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
    """Fail the unfinished images among `ids`, one UPDATE per distinct reason; an image that a
    worker holds under a live lease (it was sent again meanwhile) finishes on its own."""
    by_reason = {}
    images = Image.objects.filter(id__in=ids).exclude(status=Image.Status.PROCESSING,
                                                      lease_expires_at__gt=timezone.now())
    for image_id, attempts in images.values_list("id", "attempts"):
        reason = GAVE_UP[1].format(attempts=max(attempts, settings.MAX_RECEIVE_COUNT))
        by_reason.setdefault(reason, []).append(image_id)
    return sum(Image.objects.fail(image_ids, GAVE_UP[0], reason) for reason, image_ids in by_reason.items())


def resend_lost(now):
    """Put the images whose message was lost back in the outbox; returns how many."""
    return Image.objects.resend(list(Image.objects.lost(now).values_list("pk", flat=True)[:10_000]))


def sweep(now=None):
    """One pass: fail dead-lettered images, resend lost ones, send what the outbox holds, delete
    orphaned objects and batches left without images.
    Each part runs even when another fails (SQS down must not stop the re-sends)."""
    now = now or timezone.now()
    report = SweepReport()
    for field, step in (("dead_lettered", fail_dead_letters), ("resent", lambda: resend_lost(now)),
                        ("dispatched", lambda: dispatch(now)),
                        ("orphans", lambda: len(sweep_orphans_step(now).deleted)),
                        ("empty_batches", lambda: Batch.objects.delete_empty(now))):
        try:
            setattr(report, field, step())
        except Exception:
            log.exception("sweep: %s failed; the rest goes on", field)
    if report.dead_lettered or report.resent or report.orphans or report.empty_batches:
        log.info("sweep: %s", report)
    return report
