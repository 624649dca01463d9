"""Decode bombs against a real worker process: small files under the pixel cap whose full decode
takes hundreds of MB each. Every one ends done or failed with a reason, the worker's peak resident
set stays within its decode budget, and another user's photos, queued behind them, are done."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import Image
from classifier.upload import accept_uploads
from tests.conftest import memory_kb, reset_peak_memory, wait_until
from tests.corpus import ACCEPTED, decode_bombs, photo_jpeg

pytestmark = [pytest.mark.e2e]
MB = 2**20
BUDGET = 384 * MB
PER_IMAGE = 256 * MB
# What a worker's threads, S3 answers and allocator keep besides the budgeted decodes.
SLACK = 96 * MB


def photos(prefix):
    return [SimpleUploadedFile(f"{prefix}-{name}.jpg", photo_jpeg(name), "image/jpeg") for name in ACCEPTED]


def finished():
    return not Image.objects.exclude(status__in=["done", "failed"]).exists()


def test_decode_bombs_fail_or_finish_within_the_workers_budget(user, django_user_model, model_dir, workers,
                                                               empty_queues, settings):
    bob = django_user_model.objects.create_user("bob")
    # Past the upload check (which refuses them for their pixels per byte) as a direct upload would be.
    settings.MAX_PIXELS_PER_BYTE = 0
    worker = workers("bombs", env={"MAX_PIXELS_PER_BYTE": "0", "DECODE_MEMORY_BUDGET": str(BUDGET),
                                   "DECODE_MAX_IMAGE_BYTES": str(PER_IMAGE)})
    accept_uploads(bob, photos("warm-up"))
    wait_until(finished, timeout=180, message="the warm-up photos")
    reset_peak_memory(worker.pid)
    baseline = memory_kb(worker.pid)["VmRSS"] * 1024

    bombs = accept_uploads(user, [SimpleUploadedFile(name, data, "application/octet-stream")
                                  for name, data in decode_bombs().items()])
    assert len(bombs.accepted) == len(decode_bombs()), bombs.refused
    others = accept_uploads(bob, photos("after-the-bombs"))
    wait_until(finished, timeout=300, interval=0.5, message="every image to finish")
    peak = memory_kb(worker.pid)["VmHWM"] * 1024

    outcome = {image.original_name: image for image in Image.objects.filter(batch=bombs.batch)}
    print(f"worker VmRSS before the bombs {baseline / MB:.0f} MiB, peak during them {peak / MB:.0f} MiB "
          f"(+{(peak - baseline) / MB:.0f} MiB; budget {BUDGET / MB:.0f} MiB)")
    for name, image in outcome.items():
        print(f"  {name}: {image.status} {image.error_code} {image.error}")
        assert image.status == "done" or (image.error_code and image.error), name
    assert outcome["transparent_40mp.webp"].error_code == "too_much_memory"
    assert "MB to decode" in outcome["transparent_40mp.webp"].error
    assert sum(image.status == "done" for image in outcome.values()) >= 5
    for image in Image.objects.filter(batch=others.batch):
        assert image.status == "done" and image.top_prediction.wnid in ACCEPTED[image.original_name[16:-4]]
    assert peak - baseline <= BUDGET + SLACK
