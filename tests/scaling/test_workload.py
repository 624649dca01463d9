"""What the autoscaler measures of the work: seconds per image from the images' rows."""
from datetime import timedelta

import pytest
from django.utils import timezone

from scaling.workload import live_claims, recent_seconds_per_image
from tests.classifier.conftest import make_image

pytestmark = pytest.mark.django_db


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
    assert recent_seconds_per_image(now) == pytest.approx(1.9)


def test_a_task_of_several_images_counts_once(user):
    now = timezone.now()
    for _ in range(3):  # one group: the same worker process claimed them together
        make_image(user, status="processing", worker="node-1:7", started_at=now,
                   lease_expires_at=now + timedelta(seconds=30))
    assert live_claims(now) == {"node-1": 1}
