"""The sweeper: dead-lettered messages fail their images; lost images are re-queued once."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from classifier.models import Image
from classifier.sweeper import GAVE_UP, STALLED, image_ids_in, sweep
from classifier.tasks import classify_images
from imgsite.aws import client, queue_url
from imgsite.queue import queue_depth
from tests.classifier.conftest import make_image
from tests.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)


def long_ago():
    return timezone.now() - timedelta(seconds=settings.STALE_AFTER_SECONDS + 5)


def test_it_reads_image_ids_from_a_real_celery_message(user, empty_queues):
    classify_images.apply_async(args=[[7, 8]], queue=settings.CLASSIFY_QUEUE)
    url = queue_url(settings.CLASSIFY_QUEUE)
    message = client("sqs").receive_message(QueueUrl=url)["Messages"][0]
    client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert image_ids_in(message["Body"]) == [7, 8]


def test_it_fails_the_images_of_a_dead_lettered_message(user, empty_queues):
    image = make_image(user, status=Image.Status.PROCESSING, attempts=2, started_at=timezone.now())
    done = make_image(user, status=Image.Status.DONE)
    classify_images.apply_async(args=[[image.pk, done.pk]], queue=settings.DEAD_LETTER_QUEUE)

    report = sweep()

    image.refresh_from_db()
    done.refresh_from_db()
    assert report.dead_lettered == 1
    assert image.status == "failed" and (image.error_code, image.error) == (GAVE_UP[0], GAVE_UP[1].format(attempts=2))
    assert done.status == "done"
    assert queue_depth(settings.DEAD_LETTER_QUEUE)["visible"] == 0


def test_it_requeues_a_lost_image_once_then_fails_it(user, empty_queues):
    image = make_image(user, queued_at=long_ago())

    first = sweep()
    image.refresh_from_db()
    assert (first.requeued, image.status, image.requeues) == (1, "queued", 1)
    assert queue_depth()["visible"] == 1

    drain(settings.CLASSIFY_QUEUE)  # the new message is lost too
    Image.objects.filter(pk=image.pk).update(queued_at=long_ago())
    second = sweep()
    image.refresh_from_db()
    assert (second.failed, image.status, image.error_code, image.error) == (1, "failed", *STALLED)


def test_it_leaves_queued_images_alone_while_the_queue_holds_messages(user, empty_queues):
    image = make_image(user, queued_at=long_ago())
    classify_images.apply_async(args=[[image.pk]], queue=settings.CLASSIFY_QUEUE)

    assert sweep().requeued == 0
    image.refresh_from_db()
    assert image.status == "queued" and image.requeues == 0


def test_it_requeues_an_image_whose_worker_vanished(user, empty_queues):
    image = make_image(user, status=Image.Status.PROCESSING, started_at=long_ago(), worker="gone:1")
    fresh = make_image(user, status=Image.Status.PROCESSING, started_at=timezone.now(), worker="busy:1")

    assert sweep().requeued == 1
    image.refresh_from_db()
    fresh.refresh_from_db()
    assert image.status == "queued" and fresh.status == "processing"
