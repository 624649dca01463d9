"""Bad inputs end to end, through the gallery's form upload and through the API, with a real
worker: each file is refused at upload with a clear message, or becomes an image that fails
with a readable reason, or succeeds; never a 500, never a stuck image, and the other files of
the same request are unaffected."""
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from classifier.models import Image
from classifier.tasks import classify_images
from tests.conftest import wait_until
from tests.corpus import BAD_FILE_REASONS, bad_files, odd_but_valid_files, oversize_file, photo_jpeg, truncated_tiff

pytestmark = [pytest.mark.e2e]

CATS = {"n02123045", "n02123159", "n02124075"}  # tabby, tiger cat, Egyptian cat
LONG_NAME = "a" * 496 + ".jpg"
ODD_NAMES = {"../../etc/passwd.jpg": "passwd.jpg", "bell\x07tab\tname.jpg": "belltabname.jpg",
             LONG_NAME: LONG_NAME[:251] + ".jpg"}


def corpus():
    """(name, bytes, claimed content type) for every file of the request."""
    files = [(name, data, "image/jpeg") for name, data in bad_files().items() if name != "archive.zip"]
    files += [(name, data, "image/png" if name.endswith(".png") else "image/jpeg")
              for name, data in odd_but_valid_files().items()]
    files += [(name, photo_jpeg("coffee", max_side=200), "image/jpeg") for name in ODD_NAMES]
    files += [("scan.tiff", truncated_tiff(), "image/tiff"),
              ("huge.jpg", oversize_file(settings.MAX_UPLOAD_BYTES), "image/jpeg")]
    return files


def upload_through_the_gallery(client, user, files):
    client.force_login(user)
    response = client.post(reverse("classifier:upload"),
                           {"files": [SimpleUploadedFile(n, d, t) for n, d, t in files]})
    assert response.status_code == 302
    return dict(str(m).split(": ", 1) for m in get_messages(response.wsgi_request) if m.level_tag == "error")


def upload_through_the_api(client, user, files):
    api = APIClient()
    api.force_authenticate(user)
    response = api.post(reverse("classifier:api:batches"),
                        {"images": [SimpleUploadedFile(n, d, t) for n, d, t in files]}, format="multipart")
    assert response.status_code == 201
    return {refusal["name"]: refusal["error"] for refusal in response.json()["refused"]}


@pytest.mark.parametrize("upload", [upload_through_the_gallery, upload_through_the_api], ids=["gallery", "api"])
def test_every_file_ends_refused_failed_or_done(upload, client, user, workers, empty_queues):
    workers("bad-inputs")
    refused = upload(client, user, corpus())

    for name, reason in BAD_FILE_REASONS.items():
        if name != "archive.zip":
            assert reason in refused[name], name
    assert "too large" in refused["huge.jpg"]
    assert len(refused) == len(BAD_FILE_REASONS)  # nothing else was refused

    wait_until(lambda: not Image.objects.filter(status__in=["queued", "processing"]).exists(), timeout=120,
               message="every accepted image to finish")
    images = {image.original_name: image for image in Image.objects.all()}
    assert images["scan.tiff"].status == "failed"
    assert images["scan.tiff"].error == "The image is truncated or corrupt."
    for name in [*odd_but_valid_files(), *ODD_NAMES.values()]:
        assert images[name].status == "done", (name, images[name].error)
    assert images["rotated_exif.jpg"].top_prediction.wnid in CATS  # classified upright
    assert images["actually_jpeg.png"].content_type == "image/jpeg"
    assert all(image.file.name.startswith(f"images/{image.uuid}/") for image in images.values())


def test_presigned_urls_expire_in_minutes(aws):
    image = Image(uuid="12345678-1234-5678-1234-567812345678", file="images/x/original.jpg")
    query = parse_qs(urlsplit(image.file.url).query)
    assert query["X-Amz-Expires"] == [str(settings.PRESIGNED_URL_EXPIRY)]
    assert int(query["X-Amz-Expires"][0]) <= 900
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


@pytest.mark.django_db
def test_an_image_whose_file_is_gone_fails_as_missing(user, aws):
    from classifier.models import Batch

    batch = Batch.objects.create(owner=user)
    image = Image.objects.create(owner=user, batch=batch, file="images/gone/original.jpg", original_name="x.jpg",
                                 size=1, sha256="0" * 64)
    assert classify_images([image.pk]) == 0
    image.refresh_from_db()
    assert (image.status, image.error_code, image.error) == (
        "failed", "missing", "The uploaded file is missing from storage.")


@pytest.mark.django_db
def test_an_image_the_model_input_cannot_be_made_for_fails_alone(user, aws, configured_classifier, monkeypatch,
                                                                  sent_messages):
    from classifier.upload import accept_uploads

    photos = [SimpleUploadedFile(f"{name}.jpg", photo_jpeg(name, max_side=side), "image/jpeg")
              for name, side in (("chelsea", 300), ("coffee", 280), ("astronaut", 300))]
    images = accept_uploads(user, photos).accepted
    preprocess = configured_classifier.preprocess

    def refuse_the_coffee(picture):
        if picture.size == (280, 187):  # the coffee; the others are 300x200 and 300x300
            raise ValueError("tile cannot extend outside image")
        return preprocess(picture)

    monkeypatch.setattr(configured_classifier, "preprocess", refuse_the_coffee)
    assert classify_images([image.pk for image in images]) == 2
    outcome = {name: (code, error) for name, code, error in Image.objects.values_list("original_name", "error_code",
                                                                                        "error")}
    assert outcome == {"chelsea.jpg": ("", ""), "astronaut.jpg": ("", ""),
                       "coffee.jpg": ("unreadable", "The image could not be read (tile cannot extend outside image).")}
