"""The sweeper: dead-lettered messages fail their images; lost messages are sent again."""
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from classifier.models import GAVE_UP, Batch, Image
from classifier.sweeper import image_ids_in, sweep
from classifier.tasks import classify_images
from imgsite.aws import client, queue_url
from imgsite.queue import queue_depth
from tests.classifier.conftest import make_image

pytestmark = pytest.mark.django_db(transaction=True)


def long_ago():
    return timezone.now() - timedelta(seconds=settings.RESEND_AFTER_SECONDS + 5)


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


def test_it_leaves_a_dead_lettered_image_that_a_worker_holds_under_a_live_lease(user, empty_queues):
    image = make_image(user, status=Image.Status.PROCESSING, attempts=1, started_at=timezone.now(),
                       lease_expires_at=timezone.now() + timedelta(seconds=30), worker="w:1")
    classify_images.apply_async(args=[[image.pk]], queue=settings.DEAD_LETTER_QUEUE)

    assert sweep().dead_lettered == 0
    image.refresh_from_db()
    assert image.status == "processing"


def test_a_lost_message_is_sent_again_whatever_the_queue_holds(user, empty_queues):
    busy_queue = make_image(user, sent_at=timezone.now(), message=uuid.uuid4())
    classify_images.apply_async(args=[[busy_queue.pk]], queue=settings.CLASSIFY_QUEUE)  # the queue is not empty
    lost = make_image(user, sent_at=long_ago(), message=uuid.uuid4(), attempts=1)

    report = sweep()

    lost.refresh_from_db()
    assert (report.resent, report.dispatched) == (1, 1)
    assert (lost.status, lost.requeues, lost.attempts) == ("queued", 1, 1)  # attempts kept: the cap still holds
    assert lost.sent_at > long_ago() and queue_depth()["visible"] == 2


def test_an_image_whose_worker_vanished_is_sent_again(user, empty_queues):
    vanished = make_image(user, status=Image.Status.PROCESSING, started_at=long_ago(), lease_expires_at=long_ago(),
                          worker="gone:1", sent_at=long_ago())
    working = make_image(user, status=Image.Status.PROCESSING, started_at=long_ago(), worker="busy:1",
                         lease_expires_at=timezone.now() + timedelta(seconds=30), sent_at=long_ago())

    assert sweep().resent == 1
    vanished.refresh_from_db()
    working.refresh_from_db()
    assert vanished.status == "queued" and vanished.sent_at is not None
    assert working.status == "processing"


def test_the_resends_go_on_when_the_dead_letter_queue_cannot_be_read(user, empty_queues, monkeypatch):
    monkeypatch.setattr("classifier.sweeper.queue_url", lambda name: (_ for _ in ()).throw(ConnectionError("down")))
    lost = make_image(user, sent_at=long_ago(), message=uuid.uuid4())

    report = sweep()

    lost.refresh_from_db()
    assert (report.dead_lettered, report.resent) == (0, 1)


def test_a_batch_left_without_images_goes_once_no_started_upload_can_fill_it(user, empty_queues):
    now = timezone.now()
    long_ago = now - timedelta(seconds=2 * settings.PRESIGNED_UPLOAD_EXPIRY + 1)
    abandoned = Batch.objects.create(owner=user, created_at=long_ago)  # a start never committed
    just_started = Batch.objects.create(owner=user, created_at=now)
    full = Batch.objects.create(owner=user, created_at=long_ago)
    Image.objects.create(owner=user, batch=full, original_name="a.jpg", size=1, sha256="0" * 64)

    assert sweep(now).empty_batches == 1
    assert set(Batch.objects.all()) == {just_started, full}
    assert not Batch.objects.filter(pk=abandoned.pk).exists()
