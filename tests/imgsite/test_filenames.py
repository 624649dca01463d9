"""Uploaded file names arrive as the user's system named them, whichever client escaped them how."""
import pytest
from django.urls import reverse

from classifier.models import Image
from imgsite.filenames import unescape_form_name
from tests.corpus import photo_jpeg
from tests.web.conftest import api_client_for

NAME = 'a "quoted" name.jpg'


def test_it_undoes_the_escapes_browsers_put_in_multipart_file_names():
    assert unescape_form_name("a %22quoted%22 name.jpg") == NAME
    assert unescape_form_name("two%0Alines%0D.jpg") == "two\nlines\r.jpg"
    assert unescape_form_name("50%25 off, 100%.jpg") == "50%25 off, 100%.jpg"  # nothing else is escaped
    assert unescape_form_name("") == "" and unescape_form_name(None) is None


def post(user, disposition):
    """One file in a hand-made multipart body, with this Content-Disposition."""
    body = (b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"images\"; " + disposition.encode() +
            b"\r\nContent-Type: image/jpeg\r\n\r\n" + photo_jpeg(max_side=32) + b"\r\n--BOUNDARY--\r\n")
    return api_client_for(user).generic("POST", reverse("classifier:api:batches"), body,
                                        content_type="multipart/form-data; boundary=BOUNDARY")


@pytest.mark.django_db
@pytest.mark.parametrize("disposition", [
    'filename="a %22quoted%22 name.jpg"',  # Chromium, Firefox, curl >= 7.81, urllib3 2
    'filename="a \\"quoted\\" name.jpg"',  # older curl: a backslash-escaped quoted string
    "filename*=UTF-8''a%20%22quoted%22%20name.jpg",  # RFC 5987 style
])
def test_an_upload_keeps_the_quotes_in_its_name(user, aws, disposition):
    response = post(user, disposition)
    assert response.status_code == 201, response.content
    assert response.json()["images"][0]["name"] == NAME
    image = Image.objects.get()
    assert image.original_name == NAME and NAME not in image.file.name  # never part of the key


@pytest.mark.django_db
def test_a_line_break_in_a_name_is_dropped_not_shown_escaped(user, aws):
    response = post(user, 'filename="two%0Alines.jpg"')
    assert response.json()["images"][0]["name"] == "twolines.jpg"
