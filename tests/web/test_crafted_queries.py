"""Crafted query strings and headers answer 400 (or are ignored), never 500: digits that Python
calls digits but int() refuses, and moments at the edge of the calendar."""
import pytest
from django.urls import reverse

from tests.web.conftest import make_batch

pytestmark = pytest.mark.django_db
SUPERSCRIPT_TWO = "\u00b2"  # "²".isdigit() is True; int("²") raises ValueError


@pytest.mark.parametrize("query", [{"page": SUPERSCRIPT_TWO}, {"page_size": SUPERSCRIPT_TWO},
                                   {"batch": SUPERSCRIPT_TWO}, {"page": "\u0663"}])
def test_the_api_refuses_digits_that_are_not_ascii(alice_api, query):
    response = alice_api.get(reverse("classifier:api:images"), query)
    assert response.status_code == 400 and list(query) == list(response.json()["errors"])


@pytest.mark.parametrize("since", ["0001-01-01T00:00:10Z", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z"])
def test_status_json_takes_any_moment(alice, user, since):
    batch = make_batch(user, ["done", "queued"])
    response = alice.get(reverse("classifier:batch-status", args=[batch.pk]), {"since": since})
    assert response.status_code == 200
    assert len(response.json()["images"]) == (2 if since.startswith("0001") else 0)


def test_an_odd_content_length_is_not_an_error(alice):
    response = alice.post(reverse("classifier:upload"), {}, HTTP_CONTENT_LENGTH=SUPERSCRIPT_TWO)
    assert response.status_code < 500
