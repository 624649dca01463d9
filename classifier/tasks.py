"""Queueing images for classification, and the worker's thin task: claim, classify, record.

Every message to SQS is sent from here. The worker's signal handlers (loading the model
when a worker process starts) live here too, beside the task they serve.
"""
import logging

from botocore.exceptions import BotoCoreError
from celery import shared_task, signals
from django.conf import settings
from django.db import DatabaseError, transaction

from classifier import pipeline
from classifier.inference import get_classifier
from classifier.models import Image
from imgsite.node import worker_name

log = logging.getLogger(__name__)

# S3 hiccups, connection errors and database locks are worth retrying; a bad image is not.
TRANSIENT_ERRORS = (BotoCoreError, ConnectionError, DatabaseError, TimeoutError)


def enqueue(image_ids):
    """Send the images in groups, so that one SQS message carries several images."""
    size = settings.IMAGES_PER_MESSAGE
    for start in range(0, len(image_ids), size):
        classify_images.apply_async(args=[image_ids[start:start + size]], queue=settings.CLASSIFY_QUEUE)


def requeue(image_ids):
    """Queue these images again (done ones excepted) and send their messages once the
    transaction commits; returns how many. A duplicate message is harmless: the claim is
    conditional, so no image is classified twice."""
    with transaction.atomic():
        ids = Image.objects.requeue(image_ids)
        if ids:
            transaction.on_commit(lambda: enqueue(ids))
    return len(ids)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def classify_images(self, image_ids):
    """Classify a group of images; each one ends done or failed on its own."""
    worker = worker_name()
    images = Image.objects.claim(image_ids, worker)
    if not images:
        log.info("nothing to claim in %s (duplicate delivery or already finished)", image_ids,
                 extra={"image_ids": image_ids})
        return 0
    try:
        outcomes = pipeline.classify_stored(images)
    except TRANSIENT_ERRORS:
        Image.objects.release([image.pk for image in images], worker)
        raise
    done = Image.objects.finish(outcomes, get_classifier().name)
    log.info("classified %d of %d images", done, len(images), extra={"image_ids": [image.pk for image in images]})
    return done


@signals.worker_process_init.connect
def load_model_in_child(**kwargs):
    """A prefork child loads the model as it starts, so a missing artifact fails loudly at once."""
    get_classifier()


@signals.worker_init.connect
def load_model_in_worker(sender=None, **kwargs):
    """The solo and threads pools run tasks in this process; prefork children load their own."""
    if "prefork" not in getattr(sender.pool_cls, "__module__", str(sender.pool_cls)):
        get_classifier()
