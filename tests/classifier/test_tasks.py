"""The classify task end to end: upload view → S3 (moto) → Celery on SQS (moto) → a real worker
process → database."""
import os
import signal

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Image
from classifier.sweeper import GAVE_UP, sweep
from imgsite.queue import queue_depth
from tests.conftest import wait_until
from tests.corpus import ACCEPTED, photo_jpeg, truncated_tiff

pytestmark = [pytest.mark.e2e]


def upload(client, files):
    response = client.post(reverse("classifier:upload"), {"files": files})
    assert response.status_code == 302
    return response


def photos():
    return [SimpleUploadedFile(f"{name}.jpg", photo_jpeg(name), "image/jpeg") for name in ACCEPTED]


def one_message_of_photos(count=12):
    """Enough photos in one message that its task lasts long enough to be killed in the middle."""
    return [SimpleUploadedFile(f"photo-{number}.jpg", photo_jpeg(name), "image/jpeg")
            for number, name in enumerate(list(ACCEPTED) * (count // len(ACCEPTED)))]


def broken_tiff():
    """A truncated TIFF: its header passes the upload check, its pixels fail in the worker."""
    return SimpleUploadedFile("scan.tiff", truncated_tiff(), "image/tiff")


def final_images(count):
    images = list(Image.objects.exclude(status__in=["queued", "processing"]).order_by("id"))
    return images if len(images) == count else None


def test_three_photos_and_a_broken_file_reach_a_final_status(alice, workers, empty_queues):
    workers("e2e-1")
    upload(alice, photos() + [broken_tiff()])

    images = wait_until(lambda: final_images(4), timeout=120, message="all four images to finish")

    by_name = {image.original_name: image for image in images}
    for name, accepted in ACCEPTED.items():
        image = by_name[f"{name}.jpg"]
        assert image.status == "done", image.error
        assert image.top_prediction.wnid in accepted
        assert image.predictions.count() == 5
        assert image.thumbnail.name.endswith("thumbnail.jpg")
    broken = by_name["scan.tiff"]
    assert broken.status == "failed"
    assert "truncated" in broken.error.lower()


def test_a_killed_worker_loses_no_image(alice, workers, empty_queues):
    first = workers("doomed")
    upload(alice, one_message_of_photos())

    wait_until(lambda: Image.objects.filter(status="processing").exists(), timeout=90, interval=0.02,
               message="a worker to claim the images")
    os.killpg(first.pid, signal.SIGKILL)
    assert Image.objects.filter(status="processing").exists()

    workers("rescuer")
    images = wait_until(lambda: final_images(12), timeout=120, message="redelivery after the visibility timeout")

    assert {image.status for image in images} == {"done"}
    assert all(image.attempts == 2 for image in images)
    assert {image.worker.split(":")[0] for image in images} == {"rescuer"}


def test_a_message_that_kills_its_worker_every_time_ends_in_the_dead_letter_queue(alice, workers, empty_queues):
    """Each delivery's worker is killed mid-task (as an OOM kill would); after maxReceiveCount
    deliveries SQS moves the message to the DLQ and the sweeper fails the image."""
    upload(alice, one_message_of_photos())
    for attempt in range(1, settings.MAX_RECEIVE_COUNT + 1):
        worker = workers(f"victim-{attempt}")
        wait_until(lambda n=attempt: Image.objects.filter(status="processing", attempts=n).exists(),
                   timeout=90, interval=0.02, message=f"delivery {attempt}")
        os.killpg(worker.pid, signal.SIGKILL)

    workers("survivor")  # its receive call is the one that moves the message to the DLQ
    wait_until(lambda: queue_depth(settings.DEAD_LETTER_QUEUE)["visible"], timeout=60,
               message="the message to reach the dead-letter queue")
    sweep()

    images = Image.objects.all()
    assert len(images) == 12
    assert {(image.status, image.error) for image in images} == {
        ("failed", GAVE_UP[1].format(attempts=settings.MAX_RECEIVE_COUNT))}
