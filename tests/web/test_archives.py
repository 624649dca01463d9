"""Uploading a .zip: expanded on the server within limits, its non-images refused one by one."""
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.archives import NO_IMAGES
from classifier.models import Image
from tests.corpus import encode, photo, photo_jpeg

pytestmark = pytest.mark.django_db


def archive(members, name="photos.zip", compression=zipfile.ZIP_DEFLATED):
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", compression) as zipped:
        for member, data in members.items():
            zipped.writestr(member, data)
    return SimpleUploadedFile(name, output.getvalue(), "application/zip")


def upload(client, *files):
    return client.post(reverse("classifier:api:batches"), {"images": list(files)}, format="multipart")


def refusals(response):
    return {refusal["name"]: refusal["error"] for refusal in response.json()["refused"]}


def test_it_accepts_the_images_and_refuses_the_rest_by_name(alice_api, aws):
    response = upload(alice_api, archive({
        "holiday/cat.jpg": photo_jpeg(max_side=64),
        "holiday/coffee.png": encode(photo("coffee").resize((60, 40)), "PNG"),
        "holiday/notes.txt": b"remember the milk\n" * 10,
        "holiday/": b"",
        "__MACOSX/holiday/._cat.jpg": b"\x00\x05\x16\x07",
    }))

    assert response.status_code == 201
    assert sorted(image["name"] for image in response.json()["images"]) == ["cat.jpg", "coffee.png"]
    assert refusals(response) == {"notes.txt": "Not an image: looks like HTML/text."}
    assert sorted(Image.objects.values_list("content_type", flat=True)) == ["image/jpeg", "image/png"]


def test_no_path_from_the_archive_reaches_a_name_or_a_key(alice_api, aws):
    response = upload(alice_api, archive({"../../etc/evil.jpg": photo_jpeg(max_side=32),
                                          "C:\\Windows\\odd.jpg": photo_jpeg(max_side=32)}))
    names = sorted(image["name"] for image in response.json()["images"])
    assert names == ["evil.jpg", "odd.jpg"]
    for image in Image.objects.all():
        assert image.file.name == f"images/{image.uuid}/original.jpg"


def test_an_archive_without_images_is_refused_clearly(alice_api, aws):
    response = upload(alice_api, archive({"readme.md": b"# hello\n", "data.csv": b"a,b\n1,2\n"}))
    assert response.status_code == 400
    assert refusals(response)["photos.zip"] == NO_IMAGES[1]
    assert "readme.md" in refusals(response)


def test_an_archive_with_too_many_files_is_refused_whole(alice_api, settings, aws):
    settings.MAX_ARCHIVE_MEMBERS = 3
    response = upload(alice_api, archive({f"{n}.jpg": photo_jpeg(max_side=16) for n in range(4)}))
    assert response.status_code == 400
    assert refusals(response) == {"photos.zip": "The archive holds 4 files (limit 3): split it."}
    assert not Image.objects.exists()


def test_an_archive_that_expands_past_the_limit_is_refused_whole(alice_api, settings, aws):
    settings.MAX_ARCHIVE_UNCOMPRESSED_BYTES = 50_000
    response = upload(alice_api, archive({"a.bmp": encode(photo("chelsea"), "BMP")}))
    assert "The archive expands to" in refusals(response)["photos.zip"]


def test_a_member_that_compresses_like_a_bomb_is_refused(alice_api, aws):
    flat = b"BM" + bytes(5 * 1024 * 1024)
    response = upload(alice_api, archive({"flat.bmp": flat, "cat.jpg": photo_jpeg(max_side=64)}))
    assert response.status_code == 201
    assert "a photo never compresses that well" in refusals(response)["flat.bmp"]


def test_a_corrupt_member_is_refused_by_its_checksum(alice_api, aws):
    data = archive({"cat.jpg": photo_jpeg(max_side=64)}, compression=zipfile.ZIP_STORED).read()
    broken = SimpleUploadedFile("photos.zip", data[:30] + b"\xff" * 200 + data[230:], "application/zip")
    response = upload(alice_api, broken)
    assert response.status_code == 400
    assert refusals(response) == {"cat.jpg": "The file is corrupt in the archive (bad checksum or data).",
                                  "photos.zip": NO_IMAGES[1]}


def test_a_truncated_archive_is_refused(alice_api, aws):
    data = archive({"cat.jpg": photo_jpeg(max_side=64)}).read()
    response = upload(alice_api, SimpleUploadedFile("photos.zip", data[:-30], "application/zip"))
    assert refusals(response) == {"photos.zip": "The archive is corrupt or not a .zip file."}


def test_the_form_upload_expands_an_archive_too(alice, aws):
    zipped = archive({"cat.jpg": photo_jpeg(max_side=64), "dog.jpg": photo_jpeg("coffee", max_side=64)})
    response = alice.post(reverse("classifier:upload"), {"files": [zipped]})
    assert response.status_code == 302
    assert Image.objects.count() == 2


def test_an_office_document_is_not_expanded(alice_api, aws):
    document = archive({"word/document.xml": b"<w:document/>"}, name="report.docx")
    document.content_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert refusals(upload(alice_api, document)) == {
        "report.docx": "Not an image: looks like a ZIP archive (or an Office document)."}
