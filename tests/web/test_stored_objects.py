"""A polyglot, end to end on the suite's moto server: a GIF named pwn.html with a <script> inside is
stored and served as image/gif, as a download named pwn.gif, never as text/html."""
import io

import pytest
import requests
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PillowImage

from classifier.models import Image
from imgsite.aws import client
from tests.corpus import encode, photo, photo_jpeg

pytestmark = pytest.mark.django_db
SCRIPT = b"<script>alert(document.domain)</script>"


def polyglot_gif():
    """A valid GIF whose comment block is an HTML script: what a browser sniffing for HTML would run."""
    output = io.BytesIO()
    PillowImage.new("RGB", (16, 16), "red").save(output, "GIF", comment=b"<html><body>" + SCRIPT)
    data = output.getvalue()
    assert SCRIPT in data
    return data


def stored_metadata(name):
    return client("s3").head_object(Bucket=default_storage.bucket_name, Key=default_storage.key(name))


def test_a_gif_named_html_is_stored_and_served_as_a_gif_download(alice_api, aws):
    response = alice_api.post(reverse("classifier:api:batches"), {"images": [
        SimpleUploadedFile("pwn.html", polyglot_gif(), "text/html"),
        SimpleUploadedFile("drawing.svg", encode(photo(), "PNG"), "image/svg+xml"),
        SimpleUploadedFile("photo.jpg.gz", photo_jpeg(max_side=64), "application/gzip"),
    ]}, format="multipart")
    assert response.status_code == 201, response.content
    images = {image.original_name: image for image in Image.objects.all()}

    pwn = images["pwn.html"]
    assert pwn.content_type == "image/gif" and pwn.file.name.endswith("/original.gif")
    stored = stored_metadata(pwn.file.name)
    assert stored["ContentType"] == "image/gif" and "ContentEncoding" not in stored
    assert stored["ContentDisposition"] == 'attachment; filename="original.gif"'

    detail = alice_api.get(reverse("classifier:api:image", args=[pwn.uuid])).json()
    assert detail["content_type"] == "image/gif"
    for url in (detail["file_url"], alice_api.get(reverse("classifier:api:image-urls", args=[pwn.uuid])).json()[
            "file_url"]):
        served = requests.get(url, timeout=10)
        assert served.status_code == 200 and SCRIPT in served.content
        assert served.headers["Content-Type"] == "image/gif"
        assert served.headers["Content-Disposition"] == 'attachment; filename="pwn.gif"'

    for name, content_type, extension in [("drawing.svg", "image/png", ".png"), ("photo.jpg.gz", "image/jpeg", ".jpg")]:
        image = images[name]
        assert image.file.name.endswith(f"/original{extension}")
        stored = stored_metadata(image.file.name)
        assert stored["ContentType"] == content_type and "ContentEncoding" not in stored
        served = requests.get(image.original_url, timeout=10)
        assert served.headers["Content-Type"] == content_type and "Content-Encoding" not in served.headers
