"""Celery tasks: thin wrappers that claim rows, call plain functions and return."""
import logging

from botocore.exceptions import BotoCoreError
from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from classifier.models import Image

log = logging.getLogger(__name__)

# S3 hiccups, connection errors and database locks are worth retrying; a bad image is not.
TRANSIENT_ERRORS = (BotoCoreError, ConnectionError, DatabaseError, TimeoutError)


def enqueue(image_ids):
    """Send the images in groups, so that one SQS message carries several images."""
    size = settings.IMAGES_PER_MESSAGE
    for start in range(0, len(image_ids), size):
        classify_images.apply_async(args=[image_ids[start:start + size]], queue=settings.CLASSIFY_QUEUE)


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
    from classifier.work import classify_claimed, worker_name

    images = Image.objects.claim(image_ids, worker_name())
    if not images:
        log.info("nothing to claim in %s (duplicate delivery or already finished)", image_ids)
        return 0
    try:
        return classify_claimed(images)
    except TRANSIENT_ERRORS:
        Image.objects.release([image.pk for image in images], worker_name())
        raise
