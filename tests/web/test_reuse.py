"""Reuse by content: the same user uploading the same bytes gets the stored result at once."""
import hashlib

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Image
from tests.corpus import photo_jpeg
from tests.web.conftest import make_batch, stored

pytestmark = pytest.mark.django_db

PHOTO = photo_jpeg(max_side=64)


def sent_ids(messages):
    """The image ids that would have gone to the queue."""
    return [image_id for message in messages for image_id in message]


def classified_earlier(user, data=PHOTO, model_name="efficientnet_lite0"):
    """A done image of `user` with these bytes, five labels and a stored thumbnail."""
    image = make_batch(user, ["done"], store=True).images.get()
    Image.objects.filter(pk=image.pk).update(sha256=hashlib.sha256(data).hexdigest(), model_name=model_name)
    return Image.objects.get(pk=image.pk)


def upload(client, *names, data=PHOTO):
    files = [SimpleUploadedFile(name, data, "image/jpeg") for name in names]
    return client.post(reverse("classifier:api:batches"), {"images": files}, format="multipart",
                       HTTP_ACCEPT="application/json")


def image_json(client, uuid):
    return client.get(reverse("classifier:api:image", args=[uuid])).json()


def test_the_same_bytes_again_are_done_at_once_with_the_earlier_labels(alice_api, user, aws, sent_messages,
                                                                       django_capture_on_commit_callbacks):
    earlier = classified_earlier(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(alice_api, "again.jpg")

    assert response.status_code == 201
    [summary] = response.json()["images"]
    assert summary["status"] == "done" and sent_messages == []
    again = image_json(alice_api, summary["id"])
    assert again["reused_from"] == str(earlier.uuid)
    assert [p["label"] for p in again["predictions"]] == [p.label for p in earlier.predictions.all()]
    assert again["model"] == "efficientnet_lite0" and again["thumbnail_url"]
    assert Image.objects.get(uuid=summary["id"]).attempts == 0  # no worker ever claimed it


def test_different_bytes_or_another_model_are_classified(alice_api, user, aws, sent_messages,
                                                         django_capture_on_commit_callbacks):
    classified_earlier(user, model_name="resnet50")
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(alice_api, "same-bytes.jpg").json()["images"]
        second = upload(alice_api, "other.jpg", data=photo_jpeg(max_side=80)).json()["images"]
    assert [image["status"] for image in first + second] == ["queued", "queued"]
    assert len(sent_ids(sent_messages)) == 2 and not Image.objects.filter(reused_from__isnull=False).exists()


def test_another_users_result_is_never_reused(bob_api, user, aws, sent_messages, django_capture_on_commit_callbacks):
    classified_earlier(user)
    with django_capture_on_commit_callbacks(execute=True):
        [summary] = upload(bob_api, "mine-now.jpg").json()["images"]
    assert summary["status"] == "queued" and len(sent_ids(sent_messages)) == 1
    assert image_json(bob_api, summary["id"])["reused_from"] is None


def test_deleting_the_earlier_image_keeps_the_shared_thumbnail(alice_api, user, aws, sent_messages,
                                                               django_capture_on_commit_callbacks):
    earlier = classified_earlier(user)
    with django_capture_on_commit_callbacks(execute=True):
        [summary] = upload(alice_api, "again.jpg").json()["images"]
        alice_api.delete(reverse("classifier:api:image", args=[earlier.uuid]))
    again = Image.objects.get(uuid=summary["id"])
    assert again.reused_from is None  # the source is gone; the result stays
    assert stored(again.thumbnail.name) and stored(again.file.name) and not stored(earlier.file.name)

    with django_capture_on_commit_callbacks(execute=True):
        alice_api.delete(reverse("classifier:api:image", args=[again.uuid]))
    assert not stored(again.thumbnail.name)


def test_the_form_upload_says_how_many_were_reused(alice, user, aws, sent_messages, django_capture_on_commit_callbacks):
    classified_earlier(user)
    files = [SimpleUploadedFile("again.jpg", PHOTO, "image/jpeg"),
             SimpleUploadedFile("new.jpg", photo_jpeg(max_side=80), "image/jpeg")]
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("classifier:upload"), {"files": files}, follow=True)
    assert "1 image(s) queued for classification; 1 already classified, result reused." in response.content.decode()
    assert len(sent_ids(sent_messages)) == 1


def test_a_result_whose_thumbnail_is_gone_is_not_reused(alice_api, user, aws, sent_messages,
                                                        django_capture_on_commit_callbacks):
    """A local S3 that lost its objects must not make a new upload share a missing thumbnail."""
    lost = classified_earlier(user)
    default_storage.delete(lost.thumbnail.name)
    with django_capture_on_commit_callbacks(execute=True):
        [summary] = upload(alice_api, "again.jpg").json()["images"]
    assert summary["status"] == "queued" and len(sent_ids(sent_messages)) == 1
    assert Image.objects.get(uuid=summary["id"]).reused_from is None


def test_the_reused_result_carries_the_categories(alice_api, user, aws, sent_messages,
                                                  django_capture_on_commit_callbacks):
    classified_earlier(user)
    with django_capture_on_commit_callbacks(execute=True):
        [summary] = upload(alice_api, "again.jpg").json()["images"]
    again = Image.objects.get(uuid=summary["id"])
    assert again.predictions.get(rank=1).parents[:2] == ["domestic cat", "cat"]
    assert list(Image.objects.search_label("cat").filter(pk=again.pk)) == [again]
