"""Claiming, leasing, sending and finishing images: the conditional updates that make redelivery safe."""
import uuid
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


def test_it_takes_over_a_claim_whose_lease_ran_out(user):
    now = timezone.now()
    lapsed = make_image(user, status=Image.Status.PROCESSING, worker="dead:1", started_at=now, attempts=1,
                        lease_expires_at=now - timedelta(seconds=1))
    held = make_image(user, status=Image.Status.PROCESSING, worker="alive:1", started_at=now, attempts=1,
                      lease_expires_at=now + timedelta(seconds=5))
    claimed = Image.objects.claim([lapsed.pk, held.pk], "w2:2")
    assert [(i.pk, i.worker, i.attempts) for i in claimed] == [(lapsed.pk, "w2:2", 2)]
    assert claimed[0].lease_expires_at == claimed[0].started_at + timedelta(seconds=settings.CLAIM_LEASE_SECONDS)


def test_an_image_claimed_max_receive_count_times_fails_at_its_next_claim(user):
    image = make_image(user, attempts=settings.MAX_RECEIVE_COUNT)
    assert Image.objects.claim([image.pk], "w1:1") == []
    image.refresh_from_db()
    assert (image.status, image.error_code, image.attempts) == ("failed", "gave_up", settings.MAX_RECEIVE_COUNT)


def test_a_lease_is_extended_only_for_the_worker_that_holds_it(user):
    image = make_image(user)
    Image.objects.claim([image.pk], "w1:1")
    later = timezone.now() + timedelta(minutes=5)
    assert Image.objects.extend_lease([image.pk], "w2:2", later) == 0
    assert Image.objects.extend_lease([image.pk], "w1:1", later) == 1
    image.refresh_from_db()
    assert image.lease_expires_at == later


def test_the_outbox_hands_out_each_image_once_in_messages_of_images_per_message(user, settings):
    settings.IMAGES_PER_MESSAGE = 3
    images = [make_image(user).pk for _ in range(4)]
    first, second = uuid.uuid4(), uuid.uuid4()
    now = timezone.now()
    assert Image.objects.take_for_message(user.pk, first, now) == images[:3]
    assert Image.objects.take_for_message(user.pk, second, now) == images[3:]
    assert Image.objects.take_for_message(user.pk, uuid.uuid4(), now) == []
    assert Image.objects.waiting_messages([user.pk]) == {user.pk: 2}
    assert Image.objects.unsend(second) == 1 and Image.objects.unsent().count() == 1


def test_requeue_starts_failed_images_afresh_in_the_outbox(user):
    failed = make_image(user, status=Image.Status.FAILED, attempts=3, error_code="gave_up", sent_at=timezone.now())
    done = make_image(user, status=Image.Status.DONE)
    assert Image.objects.requeue([failed.pk, done.pk]) == [failed.pk]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.sent_at, failed.error_code) == ("queued", 0, None, "")


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
