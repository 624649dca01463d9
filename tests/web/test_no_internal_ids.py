"""No internal identifiers in what users see: no worker instance ids or pids, and images named by
UUID, never by their database key, in the API, the gallery's pages and JSON, and the exports."""
import csv
import io
import json
import uuid

import pytest
from django.urls import reverse

from classifier.models import Image
from tests.web.conftest import make_batch

pytestmark = pytest.mark.django_db
WORKER = "ip-10-0-3-7.ec2.internal:48213"


@pytest.fixture
def batch(user):
    batch = make_batch(user, ["done", "failed", "queued"])
    batch.images.exclude(status="queued").update(worker=WORKER)
    return batch


def body(response):
    assert response.status_code == 200, response.content[:300]
    return b"".join(response.streaming_content) if response.streaming else response.content


def answers(alice, alice_api, batch):
    image = batch.images.get(status="done")
    yield "API image", body(alice_api.get(reverse("classifier:api:image", args=[image.uuid])))
    yield "API images", body(alice_api.get(reverse("classifier:api:images")))
    yield "API batch", body(alice_api.get(reverse("classifier:api:batch", args=[batch.pk])))
    yield "batch page", body(alice.get(reverse("classifier:batch", args=[batch.pk])))
    yield "image page", body(alice.get(reverse("classifier:image", args=[image.uuid])))
    yield "status.json", body(alice.get(reverse("classifier:batch-status", args=[batch.pk])))
    yield "my images", body(alice.get(reverse("classifier:images")))
    yield "CSV", body(alice.get(reverse("classifier:export-csv", args=[batch.pk])))
    yield "JSON export", body(alice.get(reverse("classifier:export-json", args=[batch.pk])))


def test_no_worker_name_or_pid_reaches_users(alice, alice_api, batch):
    leaks = {where: text for where, text in answers(alice, alice_api, batch)
             if b"ip-10-0-3-7" in text or b"48213" in text}
    assert leaks == {}


def test_images_are_named_by_uuid(alice, alice_api, batch):
    pks = {image.pk for image in Image.objects.all()}
    found = [image["id"] for image in json.loads(body(alice_api.get(reverse("classifier:api:images"))))["results"]]
    found += [image["id"] for image in json.loads(body(alice.get(
        reverse("classifier:batch-status", args=[batch.pk]))))["images"]]
    found += [image["id"] for image in json.loads(body(alice.get(
        reverse("classifier:export-json", args=[batch.pk]))))["images"]]
    assert len(found) == 9 and all(uuid.UUID(identifier) for identifier in found)
    assert not pks & {identifier for identifier in found if isinstance(identifier, int)}
    rows = list(csv.DictReader(io.StringIO(body(alice.get(reverse("classifier:export-csv",
                                                                   args=[batch.pk]))).decode())))
    assert "id" not in rows[0] or all(uuid.UUID(row["id"]) for row in rows)
