"""Bounded work per request and per user, through the API and the gallery's form: the request's
budget (archive members included), the user's quotas and the upload throttle. Each refusal says
which limit, and how large it is."""
import io
import zipfile
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from classifier.models import Batch, Image
from tests.corpus import photo_jpeg

pytestmark = pytest.mark.django_db


def jpeg(name="cat.jpg", side=64):
    return SimpleUploadedFile(name, photo_jpeg(max_side=side), "image/jpeg")


def archive(count, name="photos.zip"):
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as zipped:
        for number in range(count):
            zipped.writestr(f"{number}.jpg", photo_jpeg(max_side=32 + number))
    return SimpleUploadedFile(name, output.getvalue(), "application/zip")


def api_upload(client, files):
    return client.post(reverse("classifier:api:batches"), {"images": files}, format="multipart")


def form_upload(client, files):
    """The gallery's form: the error messages shown after its redirect."""
    response = client.post(reverse("classifier:upload"), {"files": files})
    assert response.status_code == 302
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def refusals(response):
    return {refusal["name"]: (refusal["error_code"], refusal["error"]) for refusal in response.json()["refused"]}


def existing_images(user, count, status="queued", size=1000, queued_at=None):
    batch = Batch.objects.create(owner=user)
    Image.objects.bulk_create(
        Image(owner=user, batch=batch, file=f"images/{number}/original.jpg", original_name=f"{number}.jpg", size=size,
              sha256=f"{number:064d}", status=status, queued_at=queued_at or timezone.now())
        for number in range(count))


OPEN = ("You have the most images waiting or being classified at once (limit 3): upload more once some have "
        "finished.")


# --- Quotas, whole request refused before its files are read ---

def test_a_user_at_the_open_images_quota_gets_429_with_the_limit(alice_api, user, settings, aws):
    settings.QUOTA_OPEN_IMAGES = 3
    existing_images(user, 2, status="queued")
    existing_images(user, 1, status="processing")
    existing_images(user, 5, status="done")  # finished images are not open
    response = api_upload(alice_api, [jpeg()])
    assert response.status_code == 429
    assert response.json() == {"detail": OPEN, "error_code": "quota_open_images"}
    assert int(response["Retry-After"]) > 0
    assert Image.objects.count() == 8


def test_a_user_at_the_daily_quota_is_told_when_to_come_back(alice_api, user, settings, aws):
    settings.QUOTA_IMAGES_PER_DAY = 4
    now = timezone.now()
    existing_images(user, 2, status="done", queued_at=now - timedelta(hours=21))
    existing_images(user, 2, status="done", queued_at=now - timedelta(hours=2))
    existing_images(user, 9, status="done", queued_at=now - timedelta(hours=25))  # a day ago: not counted
    response = api_upload(alice_api, [jpeg()])
    assert response.status_code == 429 and response.json()["error_code"] == "quota_images_per_day"
    assert response.json()["detail"].startswith(
        "You have uploaded the most images allowed in 24 hours (limit 4): try again in 2 h 59 min")
    assert 3 * 3600 - 120 < int(response["Retry-After"]) <= 3 * 3600


def test_a_user_whose_storage_is_full_gets_413(alice_api, user, settings, aws):
    settings.QUOTA_BYTES_STORED = 5000
    existing_images(user, 5, status="done", size=1000)
    response = api_upload(alice_api, [jpeg()])
    assert response.status_code == 413
    assert response.json() == {"error_code": "quota_bytes_stored", "detail": (
        "Your images would take more than your storage (limit 5,000 bytes): delete some batches first.")}


def test_the_gallery_form_refuses_over_quota_with_the_same_words(alice, user, settings, aws):
    settings.QUOTA_OPEN_IMAGES = 3
    existing_images(user, 3)
    assert form_upload(alice, [jpeg()]) == [OPEN]
    assert Batch.objects.count() == 1


def test_the_quotas_are_per_user(alice_api, bob_api, user, settings, aws):
    settings.QUOTA_OPEN_IMAGES = 3
    existing_images(user, 3)
    assert api_upload(alice_api, [jpeg()]).status_code == 429
    assert api_upload(bob_api, [jpeg()]).status_code == 201


# --- Quotas reached part-way: the files that fit are accepted, the rest refused by name ---

def test_files_past_the_open_images_quota_are_refused_one_by_one(alice_api, user, settings, aws):
    settings.QUOTA_OPEN_IMAGES = 3
    existing_images(user, 1)
    response = api_upload(alice_api, [jpeg("a.jpg"), jpeg("b.jpg"), jpeg("c.jpg"), jpeg("d.jpg")])
    assert response.status_code == 201
    assert [image["name"] for image in response.json()["images"]] == ["a.jpg", "b.jpg"]
    assert refusals(response) == {"c.jpg": ("quota_open_images", OPEN), "d.jpg": ("quota_open_images", OPEN)}


def test_archive_members_past_the_storage_quota_are_refused_in_the_gallery(alice, user, settings, aws):
    members = [len(photo_jpeg(max_side=32 + number)) for number in range(3)]
    settings.QUOTA_BYTES_STORED = sum(members[:2])
    errors = form_upload(alice, [archive(3)])
    assert errors == ["2.jpg: Your images would take more than your storage (limit "
                      f"{sum(members[:2]):,} bytes): delete some batches first."]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["0.jpg", "1.jpg"]


# --- The request's budget: files examined and their expanded bytes, archive members included ---

REQUEST_FILES = ("Too many files in one request (limit 3, archive members included): send the rest in another "
                 "request.")


def test_archive_members_count_towards_the_files_of_a_request(alice_api, settings, aws):
    settings.MAX_IMAGES_PER_REQUEST = 3
    response = api_upload(alice_api, [jpeg("first.jpg"), archive(4), jpeg("last.jpg")])
    assert response.status_code == 201
    assert sorted(image["name"] for image in response.json()["images"]) == ["0.jpg", "1.jpg", "first.jpg"]
    assert refusals(response) == {
        "photos.zip": ("request_images", f"Only part of the archive was expanded. {REQUEST_FILES}"),
        "last.jpg": ("request_images", REQUEST_FILES)}


def test_two_archives_cannot_expand_past_the_requests_bytes(alice_api, settings, aws):
    sizes = [len(photo_jpeg(max_side=32 + number)) for number in range(3)]
    settings.MAX_REQUEST_EXPANDED_BYTES = sum(sizes) + sizes[0]
    response = api_upload(alice_api, [archive(3, "one.zip"), archive(3, "two.zip")])
    assert response.status_code == 201 and len(response.json()["images"]) == 4
    code, reason = refusals(response)["two.zip"]
    assert code == "request_bytes" and reason == (
        f"Only part of the archive was expanded. The request expands to too many bytes (limit "
        f"{sum(sizes) + sizes[0]:,}, archive members included): send the rest in another request.")


def test_a_request_of_only_files_over_its_budget_answers_413(alice_api, settings, aws):
    settings.MAX_REQUEST_EXPANDED_BYTES = 100
    response = api_upload(alice_api, [jpeg("a.jpg"), jpeg("b.jpg")])
    assert response.status_code == 413
    assert {code for code, _ in refusals(response).values()} == {"request_bytes"}


def test_the_gallery_form_counts_archive_members_too(alice, settings, aws):
    settings.MAX_IMAGES_PER_REQUEST = 3
    errors = form_upload(alice, [archive(5)])
    assert errors == [f"photos.zip: Only part of the archive was expanded. {REQUEST_FILES}"]
    assert Image.objects.count() == 3


def test_many_small_members_that_compress_like_a_bomb_refuse_the_archive(alice_api, aws):
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zipped:
        for number in range(4):  # each under the member ratio's exemption, together well over it
            zipped.writestr(f"flat{number}.bmp", b"BM" + bytes(1024 * 1024 - 2))
        zipped.writestr("cat.jpg", photo_jpeg(max_side=64))
    response = api_upload(alice_api, [SimpleUploadedFile("flat.zip", output.getvalue(), "application/zip")])
    assert response.status_code == 400
    code, reason = refusals(response)["flat.zip"]
    assert code == "archive_limit" and reason.startswith("The archive's files are compressed ")
    assert reason.endswith(":1 together (limit 100:1); photos never compress that well.")
    assert not Image.objects.exists()


# --- The upload throttle: per user, shared by the API and the form, apart from other requests ---

def test_uploads_over_the_rate_get_429_and_the_form_shares_the_count(alice_api, alice, settings, aws):
    settings.UPLOAD_RATE_LIMIT = "2/min"
    assert [api_upload(alice_api, [jpeg()]).status_code for _ in range(2)] == [201, 201]
    response = api_upload(alice_api, [jpeg()])
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response.json()["detail"].startswith("Too many uploads (limit 2/min per user). Retry in ")
    errors = form_upload(alice, [jpeg()])
    assert len(errors) == 1 and errors[0].startswith("Too many uploads (limit 2/min per user): try again in ")
    assert alice_api.get(reverse("classifier:api:batches")).status_code == 200  # other requests go on
    assert Image.objects.count() == 2


def test_the_form_upload_is_throttled_per_user(alice, bob, settings, aws):
    settings.UPLOAD_RATE_LIMIT = "1/min"
    assert form_upload(alice, [jpeg()]) == []
    assert form_upload(alice, [jpeg()])[0].startswith("Too many uploads")
    bobs_browser = Client()
    bobs_browser.force_login(bob)
    assert form_upload(bobs_browser, [jpeg()]) == []
    assert Image.objects.count() == 2


def test_a_batch_takes_at_most_max_batch_images(alice_api, user, aws, settings, sent_messages):
    settings.MAX_BATCH_IMAGES = 3
    response = api_upload(alice_api, [jpeg(f"{n}.jpg", side=40 + n) for n in range(5)])
    assert response.status_code == 201 and len(response.json()["images"]) == 3
    assert {code for code, _ in refusals(response).values()} == {"batch_full"}

    more = alice_api.post(reverse("classifier:api:batch-images", args=[response.json()["id"]]),
                          {"images": [jpeg("late.jpg", side=50)]}, format="multipart")
    assert more.status_code == 413 and "at most 3 images per batch" in more.json()["detail"]
    assert Batch.objects.get().images.count() == 3
