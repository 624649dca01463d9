"""The REST API: uploads, batches, images, deletes, limits, and other users' objects."""
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from classifier.models import Batch, Image
from tests.corpus import BAD_FILE_REASONS, bad_files, photo_jpeg
from tests.web.conftest import make_batch, stored

pytestmark = pytest.mark.django_db


def jpeg(name="cat.jpg"):
    return SimpleUploadedFile(name, photo_jpeg(max_side=64), "image/jpeg")


def upload(client, files, url=None):
    return client.post(url or reverse("classifier:api:batches"), {"images": files}, format="multipart")


def test_it_asks_for_a_token_in_words(client):
    response = APIClient().get(reverse("classifier:api:batches"))
    assert response.status_code == 401
    assert "Authorization: Token" in response.json()["detail"]


def test_upload_answers_201_with_each_image_and_each_refusal(alice_api, aws):
    response = upload(alice_api, [jpeg("a.jpg"), jpeg("b.jpg"), SimpleUploadedFile("notes.jpg", b"hello\n" * 50)])

    assert response.status_code == 201
    data = response.json()
    batch = Batch.objects.get()
    assert data["id"] == batch.pk and data["url"].endswith(f"/api/v1/batches/{batch.pk}")
    assert [(image["name"], image["status"]) for image in data["images"]] == [("a.jpg", "queued"), ("b.jpg", "queued")]
    assert data["images"][0]["url"].endswith(f"/api/v1/images/{data['images'][0]['id']}")
    assert data["refused"] == [{"name": "notes.jpg", "error_code": "not_an_image",
                                "error": "Not an image: looks like HTML/text."}]


def test_upload_into_an_existing_batch_adds_to_it(alice_api, user, aws):
    batch = make_batch(user, ["done"])
    response = upload(alice_api, [jpeg()], reverse("classifier:api:batch-images", args=[batch.pk]))
    assert response.status_code == 201 and response.json()["id"] == batch.pk
    assert batch.images.count() == 2


def test_upload_into_a_full_batch_is_a_413_that_says_so(alice_api, user, settings):
    settings.MAX_BATCH_IMAGES = 2
    batch = make_batch(user, ["done", "queued"])
    response = upload(alice_api, [jpeg()], reverse("classifier:api:batch-images", args=[batch.pk]))
    assert response.status_code == 413
    assert response.json()["detail"] == ("The batch is full: at most 2 images per batch. "
                                         "Upload the rest into a new batch.")
    assert batch.images.count() == 2 and batch.room() == 0
    settings.MAX_BATCH_IMAGES = 3
    assert batch.room() == 1


def test_upload_without_files_says_which_field_to_use(alice_api):
    response = alice_api.post(reverse("classifier:api:batches"), {}, format="multipart")
    assert response.status_code == 400 and "images" in response.json()["detail"]


def test_upload_of_only_bad_files_is_refused_with_reasons(alice_api, aws):
    # archive.zip holds a photo: the API expands it (see test_archives.py), so it is no bad file here.
    bad = {name: data for name, data in bad_files().items() if data and name != "archive.zip"}
    response = upload(alice_api, [SimpleUploadedFile(name, data) for name, data in bad.items()])
    assert response.status_code == 400
    refused = {refusal["name"]: refusal["error"] for refusal in response.json()["refused"]}
    assert refused.keys() == bad.keys()
    assert all(BAD_FILE_REASONS[name] in error for name, error in refused.items())
    assert not Batch.objects.exists()


def test_upload_of_only_oversized_files_answers_413(alice_api, settings, aws):
    settings.MAX_UPLOAD_BYTES = 1000
    response = upload(alice_api, [jpeg()])
    assert response.status_code == 413
    assert "too large" in response.json()["refused"][0]["error"]


def test_a_json_body_is_refused_with_what_to_send(alice_api):
    response = alice_api.post(reverse("classifier:api:batches"), {"images": []}, format="json")
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]


def test_a_body_over_the_request_limit_answers_413_before_it_is_read(alice_api, settings):
    settings.MAX_REQUEST_BYTES = 1000
    response = upload(alice_api, [jpeg()])
    assert response.status_code == 413
    assert "Send the files in several requests" in response.json()["detail"]


def test_too_many_files_in_one_request_answers_413(alice_api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = upload(alice_api, [jpeg("a.jpg"), jpeg("b.jpg"), jpeg("c.jpg")])
    assert response.status_code == 413 and ".zip" in response.json()["detail"]


def test_batch_gives_counts_and_images(alice_api, user):
    batch = make_batch(user)
    data = alice_api.get(reverse("classifier:api:batch", args=[batch.pk])).json()
    assert data["counts"] == {"queued": 1, "processing": 0, "done": 1, "failed": 1, "total": 3}
    assert [(image["status"], image["label"]) for image in data["images"]] == [
        ("done", "tabby"), ("failed", None), ("queued", None)]
    assert data["images_count"] == 3 and data["next"] is None and data["images"][0]["low_confidence"] is False


def test_batch_gives_its_images_a_page_at_a_time(alice_api, user):
    batch = make_batch(user, ["done", "queued", "failed", "queued", "done"])
    url = reverse("classifier:api:batch", args=[batch.pk])
    first = alice_api.get(url, {"page_size": 2}).json()
    assert first["images_count"] == 5 and first["counts"]["total"] == 5
    assert [image["name"] for image in first["images"]] == ["photo0.jpg", "photo1.jpg"]
    last = alice_api.get(first["next"]).json()
    last = alice_api.get(last["next"]).json()
    assert [image["name"] for image in last["images"]] == ["photo4.jpg"] and last["next"] is None
    assert "page=2" in last["previous"] and "page_size=2" in last["previous"]
    assert alice_api.get(url, {"page": 9}).status_code == 404
    assert alice_api.get(url, {"page_size": 0}).status_code == 400


def test_image_gives_predictions_timing_and_a_presigned_url(alice_api, user):
    image = make_batch(user, ["done"]).images.get()
    data = alice_api.get(reverse("classifier:api:image", args=[image.uuid])).json()
    top = data["predictions"][0]
    assert {key: top[key] for key in ("rank", "label", "index", "wnid", "score", "low_confidence")} == {
        "rank": 1, "label": "tabby", "index": 281, "wnid": "n00000281", "score": 0.62, "low_confidence": False}
    assert top["parents"][:3] == ["domestic cat", "cat", "domestic animal"]
    assert data["predictions"][4]["low_confidence"] is True  # doormat, 1 %
    assert len(data["predictions"]) == 5
    assert set(data["timing"]) >= {"queued_at", "started_at", "finished_at", "total_seconds"}
    assert "X-Amz-Signature" in data["file_url"] and "thumbnail.jpg" in data["thumbnail_url"]


def test_image_urls_are_fresh_presigned_urls(alice_api, user, settings):
    image = make_batch(user, ["queued"]).images.get()
    data = alice_api.get(reverse("classifier:api:image-urls", args=[image.uuid])).json()
    assert "original.jpg" in data["file_url"] and "X-Amz-Expires" in data["file_url"]
    assert data["thumbnail_url"] is None and data["expires_in"] == settings.PRESIGNED_URL_EXPIRY


def test_images_filter_by_status_and_label_and_paginate(alice_api, user, bob):
    make_batch(user, ["done", "failed", "done"])
    make_batch(bob, ["done"])
    url = reverse("classifier:api:images")
    assert alice_api.get(url).json()["count"] == 3
    assert [i["status"] for i in alice_api.get(url, {"status": "failed"}).json()["results"]] == ["failed"]
    tabby = alice_api.get(url, {"label": "tabby", "page_size": 1}).json()
    assert tabby["count"] == 2 and len(tabby["results"]) == 1 and tabby["next"]
    assert alice_api.get(url, {"label": "tiger"}).json()["count"] == 2  # "tiger cat", the second label
    assert alice_api.get(url, {"label": "feline"}).json()["count"] == 2  # a category of the labels
    assert alice_api.get(url, {"label": "tabb"}).json()["count"] == 0  # whole words


def test_an_unknown_status_is_a_400_that_lists_the_choices(alice_api):
    response = alice_api.get(reverse("classifier:api:images"), {"status": "finished"})
    assert response.status_code == 400
    assert "queued, processing, done, failed" in response.json()["errors"]["status"][0]


def test_deleting_an_image_deletes_its_files(alice_api, user, aws, django_capture_on_commit_callbacks):
    image = make_batch(user, ["done"], store=True).images.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(reverse("classifier:api:image", args=[image.uuid]))
    assert response.status_code == 204
    assert not Image.objects.exists() and not stored(image.file.name) and not stored(image.thumbnail.name)


def test_deleting_a_batch_deletes_it_all(alice_api, user, aws, django_capture_on_commit_callbacks):
    batch = make_batch(user, ["done", "queued"], store=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(reverse("classifier:api:batch", args=[batch.pk])).status_code == 204
    assert not Batch.objects.exists() and not Image.objects.exists()


def test_retry_requeues_failed_images(alice_api, user, sent_messages):
    batch = make_batch(user, ["failed", "done"])
    response = alice_api.post(reverse("classifier:api:batch-retry", args=[batch.pk]))
    assert response.json() == {"requeued": 1, "held_back": 0}
    assert sorted(batch.images.values_list("status", flat=True)) == ["done", "queued"]


def test_a_retry_is_new_work_within_the_open_images_quota_and_the_upload_rate(alice_api, user, sent_messages,
                                                                              settings):
    settings.QUOTA_OPEN_IMAGES, settings.UPLOAD_RATE_LIMIT = 3, "2/min"
    batch = make_batch(user, ["failed"] * 4 + ["queued"])
    url = reverse("classifier:api:batch-retry", args=[batch.pk])

    answers = [alice_api.post(url) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert [answers[0].json(), answers[1].json()] == [{"requeued": 2, "held_back": 2}, {"requeued": 0, "held_back": 2}]
    assert batch.images.filter(status="queued").count() == 3


def test_requests_over_the_rate_limit_get_429_with_a_retry_time(alice_api, settings):
    settings.API_RATE_LIMIT = "2/min"
    url = reverse("classifier:api:batches")
    assert [alice_api.get(url).status_code for _ in range(3)] == [200, 200, 429]
    response = alice_api.get(url)
    assert "limit 2/min per user" in response.json()["detail"] and int(response["Retry-After"]) > 0


def others(batch):
    image = batch.images.first()
    return [
        ("get", reverse("classifier:api:batch", args=[batch.pk])),
        ("delete", reverse("classifier:api:batch", args=[batch.pk])),
        ("post", reverse("classifier:api:batch-images", args=[batch.pk])),
        ("post", reverse("classifier:api:batch-retry", args=[batch.pk])),
        ("get", reverse("classifier:api:image", args=[image.uuid])),
        ("delete", reverse("classifier:api:image", args=[image.uuid])),
        ("get", reverse("classifier:api:image-urls", args=[image.uuid])),
    ]


def test_another_users_batch_and_images_answer_404(user, bob_api, aws):
    batch = make_batch(user, ["done", "failed"])
    for method, url in others(batch):
        response = getattr(bob_api, method)(url, **({"data": {"images": [jpeg()]}, "format": "multipart"}
                                                  if url.endswith("/images") else {}))
        assert response.status_code == 404, (method, url)
        assert "among your" in response.json()["detail"]
    assert batch.images.count() == 2 and not batch.images.filter(status="queued").exists()
    assert bob_api.get(reverse("classifier:api:images")).json()["count"] == 0


def test_missing_and_out_of_range_ids_answer_404(alice_api):
    assert alice_api.get(reverse("classifier:api:image", args=[uuid.uuid4()])).status_code == 404
    assert alice_api.get(f"/api/v1/batches/{2**70}").status_code == 404
