"""UploadBudget on its own: what it counts, and when the daily quota frees up (the clock passed in)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from classifier.limits import LimitReached, UploadBudget, duration
from tests.classifier.conftest import make_image

pytestmark = pytest.mark.django_db


def test_the_daily_quota_frees_up_a_day_after_the_oldest_upload(user, settings):
    settings.QUOTA_IMAGES_PER_DAY = 2
    uploaded = timezone.now() - timedelta(hours=30)
    make_image(user, queued_at=uploaded)
    make_image(user, queued_at=uploaded + timedelta(hours=1))
    assert UploadBudget(user, now=uploaded + timedelta(hours=23)).problem().retry_after == 3600
    assert UploadBudget(user, now=uploaded + timedelta(hours=24, seconds=1)).problem() is None


def test_a_request_charges_each_file_it_examines_and_each_image_it_accepts(user, settings):
    settings.MAX_IMAGES_PER_REQUEST, settings.MAX_REQUEST_EXPANDED_BYTES = 3, 1000
    settings.QUOTA_OPEN_IMAGES, settings.QUOTA_BYTES_STORED = 2, 10_000
    budget = UploadBudget(user)
    budget.examine(400)
    budget.accept(400)
    budget.examine(500)  # refused later for what it holds: it counts for the request, not the quotas
    with pytest.raises(LimitReached) as caught:
        budget.examine(101)
    assert caught.value.code == "request_bytes" and caught.value.status == 413
    budget.examine(100)
    budget.accept(100)
    with pytest.raises(LimitReached) as caught:
        budget.accept(1)
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == ("quota_open_images", 429, 60)
    with pytest.raises(LimitReached, match="Too many files in one request"):
        budget.examine(0)


@pytest.mark.parametrize("seconds, words", [(40, "40 s"), (300, "5 min"), (3 * 3600 + 1250, "3 h 20 min")])
def test_durations_read_as_people_say_them(seconds, words):
    assert duration(seconds) == words
