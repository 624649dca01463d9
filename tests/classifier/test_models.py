"""Claiming and finishing images: the conditional updates that make redelivery safe."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from classifier.inference import Label
from classifier.models import Image
from tests.classifier.conftest import make_image

pytestmark = pytest.mark.django_db


def test_it_claims_a_queued_image_once(user):
    image = make_image(user)
    assert [i.pk for i in Image.objects.claim([image.pk], "w1:1")] == [image.pk]
    assert Image.objects.claim([image.pk], "w2:2") == []
    image.refresh_from_db()
    assert (image.status, image.worker, image.attempts) == ("processing", "w1:1", 1)


def test_it_takes_over_a_claim_older_than_the_task_time_limit(user):
    old = timezone.now() - timedelta(seconds=settings.TASK_TIME_LIMIT + 1)
    image = make_image(user, status=Image.Status.PROCESSING, worker="dead:1", started_at=old, attempts=1)
    claimed = Image.objects.claim([image.pk], "w2:2")
    assert [i.worker for i in claimed] == ["w2:2"]
    assert claimed[0].attempts == 2


def test_it_never_claims_a_finished_image(user):
    done = make_image(user, status=Image.Status.DONE)
    failed = make_image(user, status=Image.Status.FAILED)
    assert Image.objects.claim([done.pk, failed.pk], "w1:1") == []


def test_mark_done_stores_ranked_predictions(user):
    image = make_image(user)
    [image] = Image.objects.claim([image.pk], "w1:1")
    labels = [Label(281, "n02123045", "tabby", 0.7), Label(285, "n02124075", "Egyptian cat", 0.2)]
    assert image.mark_done(labels, "efficientnet_lite0")
    image.refresh_from_db()
    assert image.status == "done" and image.model_name == "efficientnet_lite0"
    assert [(p.rank, p.label) for p in image.predictions.all()] == [(1, "tabby"), (2, "Egyptian cat")]


def test_mark_done_refuses_a_worker_that_lost_its_claim(user):
    image = make_image(user)
    [stale] = Image.objects.claim([image.pk], "w1:1")
    Image.objects.filter(pk=image.pk).update(worker="w2:2")
    assert not stale.mark_done([Label(1, "n01443537", "goldfish", 0.9)], "efficientnet_lite0")
    assert not image.predictions.exists()


def test_release_puts_claimed_images_back_in_the_queue(user):
    image = make_image(user)
    Image.objects.claim([image.pk], "w1:1")
    assert Image.objects.release([image.pk], "w1:1") == 1
    image.refresh_from_db()
    assert image.status == "queued" and image.started_at is None


def test_seconds_per_image_counts_a_workers_overlapping_groups_once(user):
    now = timezone.now()
    start = now - timedelta(seconds=60)

    def group(worker, begin, seconds, count):
        for _ in range(count):
            make_image(user, status="done", worker=worker, started_at=start + timedelta(seconds=begin),
                       finished_at=start + timedelta(seconds=begin + seconds))

    group("a:1", 0, 10, 4)  # two tasks in threads on one worker: 0-10 s and 5-15 s, 8 images
    group("a:1", 5, 10, 4)
    group("b:2", 0, 4, 2)  # another worker: 4 s for 2 images
    group("", 20, 0, 5)  # results reused at upload: no worker's time
    # (15 s busy on a:1 + 4 s on b:2) / 10 images; counting each group's span would say 2.4 s
    assert Image.objects.recent_seconds_per_image(now) == pytest.approx(1.9)
