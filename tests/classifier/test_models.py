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


def test_finish_stores_ranked_predictions_and_failures_with_their_code(user):
    good, bad = make_image(user), make_image(user)
    good, bad = Image.objects.claim([good.pk, bad.pk], "w1:1")
    labels = [Label(281, "n02123045", "tabby", 0.7), Label(285, "n02124075", "Egyptian cat", 0.2)]
    outcomes = [(good, labels, "images/x/thumbnail.jpg", "", ""),
                (bad, (), "", "truncated", "The image is truncated or corrupt.")]
    assert Image.objects.finish(outcomes, "efficientnet_lite0") == 1
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == "done" and good.model_name == "efficientnet_lite0"
    assert [(p.rank, p.label) for p in good.predictions.all()] == [(1, "tabby"), (2, "Egyptian cat")]
    assert (bad.status, bad.error_code, bad.error) == ("failed", "truncated", "The image is truncated or corrupt.")


@pytest.mark.parametrize("code", ["", "truncated"])
def test_finish_refuses_a_worker_that_lost_its_claim(user, code):
    image = make_image(user)
    [stale] = Image.objects.claim([image.pk], "w1:1")
    Image.objects.filter(pk=image.pk).update(worker="w2:2")
    labels = [] if code else [Label(1, "n01443537", "goldfish", 0.9)]
    assert Image.objects.finish([(stale, labels, "", code, "reason" if code else "")], "efficientnet_lite0") == 0
    image.refresh_from_db()
    assert (image.status, image.worker) == ("processing", "w2:2")
    assert not image.predictions.exists()


def test_release_puts_claimed_images_back_in_the_queue(user):
    image = make_image(user)
    Image.objects.claim([image.pk], "w1:1")
    assert Image.objects.release([image.pk], "w1:1") == 1
    image.refresh_from_db()
    assert image.status == "queued" and image.started_at is None
