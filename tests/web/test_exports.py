"""Exporting a batch as CSV and JSON."""
import csv
import io
import json

import pytest
from django.urls import reverse

from classifier.exports import CSV_HEADER
from tests.web.conftest import make_batch

pytestmark = pytest.mark.django_db


def rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_has_a_row_per_image_with_top1_and_top5_columns(alice, user):
    batch = make_batch(user)
    response = alice.get(reverse("classifier:export-csv", args=[batch.pk]))

    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch.pk}.csv"'
    header, done, failed, queued = rows(response)
    assert header[:3] == ["name", "label", "score"] and header == CSV_HEADER
    assert done[:5] == ["photo0.jpg", "tabby", "0.6200", "tiger cat", "0.2000"]
    assert done[header.index("label_5")] == "doormat"
    assert failed[:3] == ["photo1.jpg", "", ""]
    assert failed[-5:] == ["failed", "", "The image is truncated or corrupt.", "", ""]  # made without a code
    assert queued[-5:] == ["queued", "", "", "", ""]


def test_csv_and_json_carry_the_categories_and_mark_guesses(alice, user, settings):
    settings.LOW_CONFIDENCE_BELOW = 0.5
    batch = make_batch(user, ["done"])
    header, done = rows(alice.get(reverse("classifier:export-csv", args=[batch.pk])))
    assert done[header.index("parents")].startswith("domestic cat; cat; ")
    assert done[header.index("low_confidence")] == "no"  # tabby at 62 %

    response = alice.get(reverse("classifier:export-json", args=[batch.pk]))
    predictions = json.loads(b"".join(response.streaming_content))["images"][0]["predictions"]
    assert [p["low_confidence"] for p in predictions] == [False, True, True, True, True]
    assert predictions[0]["parents"][:2] == ["domestic cat", "cat"]


def test_csv_defuses_filenames_that_a_spreadsheet_would_run(alice, user):
    batch = make_batch(user, ["queued"])
    batch.images.update(original_name="=HYPERLINK(\"http://x\").jpg")
    _, row = rows(alice.get(reverse("classifier:export-csv", args=[batch.pk])))
    assert row[0] == "'=HYPERLINK(\"http://x\").jpg"


def test_json_lists_every_image_with_its_predictions(alice, user):
    batch = make_batch(user)
    response = alice.get(reverse("classifier:export-json", args=[batch.pk]))
    data = json.loads(b"".join(response.streaming_content))
    assert data["batch"] == batch.pk
    assert [image["status"] for image in data["images"]] == ["done", "failed", "queued"]
    assert [p["label"] for p in data["images"][0]["predictions"]] == ["tabby", "tiger cat", "Egyptian cat", "lynx",
                                                                      "doormat"]
    assert data["images"][0]["predictions"][0]["index"] == 281
