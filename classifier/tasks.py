"""Queueing images for classification, and the worker's thin task: claim, classify, record.

Every message to SQS is sent from here. Accepted images wait in the database (the outbox)
and `dispatch` sends them so that each user has at most DISPATCH_WAITING_PER_USER messages
waiting in SQS: a big job never puts more than that ahead of anyone else, and the fleet
stays busy because every claim refills its user's share. While a task runs, its message's
visibility and its images' leases are extended in short steps, so a dead worker's images
are picked up by another worker within SQS_VISIBILITY_TIMEOUT.
"""
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task, signals
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.worker.request import Request
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from classifier import pipeline
from classifier.inference import get_classifier
from classifier.labels import hierarchy
from classifier.models import Image
from classifier.orphans import delete_thumbnails_of_vanished
from imgsite.aws import client
from imgsite.node import worker_name

log = logging.getLogger(__name__)

# S3 hiccups, connection errors and database locks are worth retrying; a bad image is not.
TRANSIENT_ERRORS = (BotoCoreError, ConnectionError, DatabaseError, TimeoutError)
SEND_ERRORS = (BotoCoreError, ClientError, KombuError, OSError)
# Users served per dispatch pass, the longest waiting first; the next pass serves the rest.
DISPATCH_USERS_PER_PASS = 200


def dispatch(now=None, owners=None):
    """Send messages from the outbox, a message per user in turn, until every user with unsent
    images (or each of `owners`) has DISPATCH_WAITING_PER_USER messages waiting in SQS. Never
    raises: a send that fails puts its images back in the outbox for the next pass. Returns the
    messages sent."""
    now = now or timezone.now()
    sent = 0
    try:
        owners = owners or Image.objects.outbox_owners(DISPATCH_USERS_PER_PASS)
        waiting = Image.objects.waiting_messages(owners)
        room = {owner: settings.DISPATCH_WAITING_PER_USER - waiting.get(owner, 0) for owner in owners}
        while any(free > 0 for free in room.values()):
            for owner in [owner for owner, free in room.items() if free > 0]:
                ids = send_message(owner, now)
                room[owner] = room[owner] - 1 if ids else 0
                sent += bool(ids)
    except DatabaseError:
        log.exception("dispatch stopped after %d message(s); the next pass goes on", sent)
    return sent


def send_message(owner_id, now):
    """Take the owner's oldest unsent images for one message and send it; returns their ids."""
    message = uuid.uuid4()
    ids = Image.objects.take_for_message(owner_id, message, now)
    if not ids:
        return []
    try:
        classify_images.apply_async(args=[ids], queue=settings.CLASSIFY_QUEUE)
    except SEND_ERRORS:
        log.exception("could not send %d image(s); they stay in the outbox", len(ids))
        Image.objects.unsend(message)
        return []
    return ids


class Dispatcher:
    """Runs dispatch() in a thread of its own, so that a worker's task does not wait for the SQS
    round trip of the message it makes room for; requests that come while one runs are folded
    into one more pass."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = self.running = False

    def soon(self):
        with self.lock:
            if self.running:
                self.pending = True
                return
            self.running = True
        threading.Thread(target=self.run, daemon=True, name="dispatch").start()

    def run(self):
        try:
            while True:
                try:
                    dispatch()
                except Exception:  # the thread must let the next soon() run: the outbox keeps the images
                    log.exception("dispatch failed; the next claim or the sweeper sends the outbox")
                with self.lock:
                    if not self.pending:
                        self.running = False
                        return
                    self.pending = False
        finally:
            connection.close()


dispatcher = Dispatcher()


def dispatch_after_commit(owners):
    """Dispatch the images of `owners` once the current transaction commits (they are then
    visible to workers); other users' are sent by the workers' claims and the sweeper, not on
    this request's time."""
    transaction.on_commit(lambda: dispatch(owners=list(owners)))


def requeue(image_ids):
    """Queue these images again (done ones excepted), from a fresh start, and dispatch them once
    the transaction commits; returns how many. A duplicate message is harmless: the claim is
    conditional, so no image is classified twice."""
    with transaction.atomic():
        ids = Image.objects.requeue(image_ids)
        if ids:
            dispatch_after_commit(set(Image.objects.filter(pk__in=ids).values_list("owner_id", flat=True)))
    return len(ids)


class SqsRequest(Request):
    """Celery's request, with the SQS receipt handle passed to the task, and never re-published.

    Celery re-publishes a rejected message as a new one, whose receive count starts again at
    zero; here a crashed, killed or timed-out task's message is left to SQS, which redelivers
    it once its visibility lapses and dead-letters it after MAX_RECEIVE_COUNT receives."""

    def __init__(self, message, **kwargs):
        super().__init__(message, **kwargs)
        sqs = message.delivery_info.get("sqs_message") or {}
        self._delivery_info.update(receipt_handle=sqs.get("ReceiptHandle"),
                                   queue_url=message.delivery_info.get("sqs_queue"),
                                   receive_count=int(sqs.get("Attributes", {}).get("ApproximateReceiveCount", 0)))

    def reject(self, requeue=False):
        return super().reject(requeue=False)


@contextmanager
def keep_claimed(delivery_info, ids, worker):
    """While the block runs, extend the message's visibility and the images' leases every third
    of SQS_VISIBILITY_TIMEOUT, up to TASK_TIME_LIMIT; a worker that dies stops doing so."""
    stop = threading.Event()
    thread = threading.Thread(target=extend_claims, args=(stop, delivery_info, ids, worker), daemon=True,
                              name="keep-claimed")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def extend_claims(stop, delivery_info, ids, worker):
    give_up_at = time.monotonic() + settings.TASK_TIME_LIMIT
    try:
        while not stop.wait(settings.SQS_VISIBILITY_TIMEOUT / 3) and time.monotonic() < give_up_at:
            try:
                now = timezone.now()  # before the message's new deadline, so the leases end first
                hide_message(delivery_info, settings.SQS_VISIBILITY_TIMEOUT)
                Image.objects.extend_lease(ids, worker, now + timedelta(seconds=settings.CLAIM_LEASE_SECONDS))
            except (BotoCoreError, ClientError, DatabaseError):
                log.warning("could not extend the claim on %s", ids, exc_info=True)
    finally:
        connection.close()


def hide_message(delivery_info, seconds):
    """Keep the task's message hidden for `seconds` from now (SQS's visibility timeout)."""
    if delivery_info.get("receipt_handle") and delivery_info.get("queue_url"):
        client("sqs").change_message_visibility(QueueUrl=delivery_info["queue_url"],
                                                ReceiptHandle=delivery_info["receipt_handle"],
                                                VisibilityTimeout=int(seconds))


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    Request=SqsRequest,
)
def classify_images(self, image_ids):
    """Classify a group of images; each one ends done or failed on its own."""
    worker, delivery_info, now = worker_name(), self.request.delivery_info or {}, timezone.now()
    try:
        # Before the claim, and timed from before this call: the message stays hidden longer than
        # the claim's lease, whatever visibility timeout the queue itself has.
        hide_message(delivery_info, settings.SQS_VISIBILITY_TIMEOUT)
    except (BotoCoreError, ClientError):
        log.warning("could not extend the visibility of %s", image_ids, exc_info=True)
    images = Image.objects.claim(image_ids, worker, now)
    dispatcher.soon()  # this message no longer waits: its user may send another
    if not images:
        come_back_after_the_lease(delivery_info, image_ids)
        log.info("nothing to claim in %s (already finished)", image_ids, extra={"image_ids": image_ids})
        return 0
    ids = [image.pk for image in images]
    deadline = time.monotonic() + settings.TASK_SOFT_TIME_LIMIT
    try:
        with keep_claimed(delivery_info, ids, worker):
            outcomes = pipeline.classify_stored(images, deadline=deadline)
    except SoftTimeLimitExceeded:
        outcomes = [pipeline.timed_out(image) for image in images]
    except TRANSIENT_ERRORS:
        Image.objects.release(ids, worker)
        raise
    done = Image.objects.finish(outcomes, get_classifier().name)
    delete_thumbnails_of_vanished(outcomes)  # images their owner deleted while they were classified
    log.info("classified %d of %d images", done, len(images), extra={"image_ids": ids})
    return done


def come_back_after_the_lease(delivery_info, image_ids):
    """If another worker's lease still holds some of these images, this message may be the
    redelivery of a task whose worker just died: hide it until the lease lapses and let SQS
    deliver it again (Reject without requeue), rather than acknowledge it and strand them."""
    held_until = Image.objects.held_until(image_ids, timezone.now())
    if held_until is None:
        return
    seconds = max((held_until - timezone.now()).total_seconds() + 1, settings.SQS_VISIBILITY_TIMEOUT)
    try:
        hide_message(delivery_info, min(seconds, 12 * 3600))
    except (BotoCoreError, ClientError):
        log.warning("could not delay %s; SQS redelivers it after its visibility timeout", image_ids, exc_info=True)
    raise Reject(f"images {image_ids} are held by another worker until {held_until:%H:%M:%S}", requeue=False)


def load_model():
    """The model and the classes' categories, loaded before the first task: a missing artifact
    fails loudly at once, not inside finish()'s transaction after a group was classified."""
    get_classifier()
    hierarchy()


@signals.worker_process_init.connect
def load_model_in_child(**kwargs):
    """A prefork child loads the model as it starts."""
    load_model()


@signals.worker_init.connect
def load_model_in_worker(sender=None, **kwargs):
    """The solo and threads pools run tasks in this process; prefork children load their own."""
    if "prefork" not in getattr(sender.pool_cls, "__module__", str(sender.pool_cls)):
        load_model()


@signals.worker_ready.connect
def dispatch_when_ready(**kwargs):
    """A worker that starts may find images waiting in the outbox for it."""
    close_old_connections()
    dispatch()
