"""The image bucket's objects: typed by content, never by name; stored as attachments; presigned
URLs that make S3 answer with the type and disposition we choose. On the suite's moto server."""
import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from imgsite.aws import client
from tests.corpus import photo_jpeg


def head(name):
    return client("s3").head_object(Bucket=default_storage.bucket_name, Key=default_storage.key(name))


@pytest.mark.parametrize("name", ["tests/storage/page.html", "tests/storage/drawing.svg", "tests/storage/x.tar.gz"])
def test_a_name_never_chooses_type_or_encoding(aws, name):
    saved = default_storage.save(name, ContentFile(photo_jpeg(max_side=32)))  # FileField.save's path
    stored = head(saved)
    assert stored["ContentType"] == "application/octet-stream"
    assert "ContentEncoding" not in stored
    written = default_storage.write(name, photo_jpeg(max_side=32), "image/jpeg")  # the worker's and upload's path
    stored = head(written)
    assert stored["ContentType"] == "image/jpeg" and "ContentEncoding" not in stored
    default_storage.delete_many([saved, written])


def test_every_object_is_stored_as_an_attachment(aws):
    name = default_storage.write("tests/storage/original.gif", b"GIF89a", "image/gif")
    assert head(name)["ContentDisposition"] == 'attachment; filename="original.gif"'
    default_storage.delete_many([name])


def test_a_signed_url_sets_the_answers_type_and_disposition(aws):
    name = default_storage.write("tests/storage/original.gif", b"GIF89a<script>alert(1)</script>", "text/html")
    download = requests.get(default_storage.signed_url(name, "image/gif", download_name='pwn "1".gif'), timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/gif"
    assert download.headers["Content-Disposition"] == r'attachment; filename="pwn \"1\".gif"'
    shown = requests.get(default_storage.signed_url(name, "image/jpeg"), timeout=10)
    assert shown.headers["Content-Type"] == "image/jpeg" and shown.headers["Content-Disposition"] == "inline"
    default_storage.delete_many([name])
