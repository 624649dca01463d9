"""The gallery's pages: batches, one batch with its status endpoint, search, and the actions."""
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from classifier.models import Batch, Image
from tests.corpus import photo_jpeg
from tests.web.conftest import make_batch, stored

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_log_in(client):
    response = client.get(reverse("classifier:batches"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_lists_batches_newest_first_with_their_counts(alice, user):
    older = make_batch(user, ["done", "done"])
    newer = make_batch(user, ["failed", "queued", "processing"])
    Batch.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=1))

    html = alice.get(reverse("classifier:batches")).content.decode()

    assert html.index(f"Batch {newer.pk}") < html.index(f"Batch {older.pk}")
    assert "1 failed" in html and "2 in progress" in html and "2 done" in html
    assert "classifier/batches.js" in html and "classifier/batches.css" in html


def test_it_paginates_batches(alice, user):
    for _ in range(21):
        make_batch(user, ["queued"])
    page_two = alice.get(reverse("classifier:batches"), {"page": 2})
    assert "Page 2 of 2" in page_two.content.decode()
    assert len(page_two.context["page"].object_list) == 1


def test_it_shows_a_card_per_image_with_its_label_and_failure_reason(alice, user):
    batch = make_batch(user)
    html = alice.get(reverse("classifier:batch", args=[batch.pk])).content.decode()
    assert html.count('class="card image"') == 3
    assert "<strong>tabby</strong>" in html and "62%" in html
    assert "The image is truncated or corrupt." in html
    assert 'alt="Thumbnail of photo0.jpg"' in html and "X-Amz-Signature" in html  # presigned thumbnail
    assert 'aria-label="Thumbnail not ready yet"' in html  # the queued one
    assert "original.jpg" not in html  # originals are never shown as thumbnails


@pytest.mark.parametrize("name, method", [
    ("classifier:batch", "get"), ("classifier:batch-status", "get"), ("classifier:export-csv", "get"),
    ("classifier:export-json", "get"), ("classifier:retry-batch", "post"), ("classifier:delete-batch", "post"),
])
def test_it_answers_404_for_another_users_batch(alice, bob, name, method):
    batch = make_batch(bob)
    response = getattr(alice, method)(reverse(name, args=[batch.pk]))
    assert response.status_code == 404
    assert Batch.objects.filter(pk=batch.pk).exists()


def test_it_answers_404_when_deleting_another_users_image(alice, bob):
    image = make_batch(bob, ["done"]).images.get()
    assert alice.post(reverse("classifier:delete-image", args=[image.uuid])).status_code == 404
    assert Image.objects.filter(pk=image.pk).exists()


def test_status_gives_counts_and_every_image_at_first(alice, user):
    batch = make_batch(user)
    data = alice.get(reverse("classifier:batch-status", args=[batch.pk])).json()
    assert data["counts"] == {"queued": 1, "processing": 0, "done": 1, "failed": 1, "total": 3}
    assert data["finished"] is False
    done = next(image for image in data["images"] if image["status"] == "done")
    assert [p["label"] for p in done["predictions"]][:2] == ["tabby", "tiger cat"]
    assert "thumbnail.jpg" in done["thumbnail"]
    failed = next(image for image in data["images"] if image["status"] == "failed")
    assert failed["error"] == "The image is truncated or corrupt." and failed["thumbnail"] == ""


def test_status_since_leaves_out_images_unchanged_since_then(alice, user):
    batch = make_batch(user, ["queued", "queued"])
    long_ago = timezone.now() - timedelta(hours=1)
    batch.images.update(queued_at=long_ago)
    changed = batch.images.first()
    Image.objects.filter(pk=changed.pk).update(status="processing", started_at=timezone.now())

    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    data = alice.get(reverse("classifier:batch-status", args=[batch.pk]), {"since": since}).json()

    assert [image["id"] for image in data["images"]] == [str(changed.uuid)]
    assert data["counts"]["processing"] == 1


def test_status_takes_a_naive_since_as_utc(alice, user):
    batch = make_batch(user, ["queued"])
    batch.images.update(queued_at=timezone.now() - timedelta(hours=1))
    since = (timezone.now() - timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert alice.get(reverse("classifier:batch-status", args=[batch.pk]), {"since": since}).json()["images"] == []


def test_status_with_ids_answers_only_those_cards(alice, user):
    batch = make_batch(user, ["done", "done", "queued"])
    wanted = batch.images.order_by("id").first()
    url = reverse("classifier:batch-status", args=[batch.pk])
    data = alice.get(url, {"ids": f"{wanted.uuid},not-a-uuid"}).json()
    assert [image["id"] for image in data["images"]] == [str(wanted.uuid)]
    assert "thumbnail.jpg" in data["images"][0]["thumbnail"]
    assert data["counts"]["total"] == 3


def test_status_says_finished_when_no_image_is_open(alice, user):
    batch = make_batch(user, ["done", "failed"])
    assert alice.get(reverse("classifier:batch-status", args=[batch.pk]), {"since": "junk"}).json()["finished"]


def test_search_finds_images_by_top_label_and_status(alice, user, bob):
    make_batch(user, ["done", "failed"])
    make_batch(bob, ["done"])
    found = alice.get(reverse("classifier:images"), {"q": "TABBY"}).context["page"].object_list
    assert [image.owner for image in found] == [user]
    assert not alice.get(reverse("classifier:images"), {"q": "tiger"}).context["page"].object_list  # rank 2
    failed = alice.get(reverse("classifier:images"), {"status": "failed"}).context["page"].object_list
    assert [image.status for image in failed] == ["failed"]


def test_the_form_upload_redirects_to_the_new_batch(alice, aws):
    files = [SimpleUploadedFile("cat.jpg", photo_jpeg(max_side=64), "image/jpeg")]
    response = alice.post(reverse("classifier:upload"), {"files": files})
    batch = Batch.objects.get()
    assert response["Location"] == reverse("classifier:batch", args=[batch.pk])


def test_deleting_an_image_deletes_its_stored_files(alice, user, aws, django_capture_on_commit_callbacks):
    image = make_batch(user, ["done"], store=True).images.get()
    names = [image.file.name, image.thumbnail.name]
    assert all(stored(name) for name in names)

    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("classifier:delete-image", args=[image.uuid]))

    assert response["Location"] == reverse("classifier:batch", args=[image.batch_id])
    assert not Image.objects.exists()
    assert not any(stored(name) for name in names)


def test_deleting_a_batch_deletes_its_images_and_files(alice, user, aws, django_capture_on_commit_callbacks):
    batch = make_batch(user, ["done", "failed"], store=True)
    names = [name for pair in batch.images.values_list("file", "thumbnail") for name in pair if name]

    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("classifier:delete-batch", args=[batch.pk]))

    assert not Batch.objects.exists() and not Image.objects.exists()
    assert len(names) == 3 and not any(stored(name) for name in names)


def test_retry_requeues_the_failed_images_only(alice, user, sent_messages, django_capture_on_commit_callbacks):
    batch = make_batch(user, ["done", "failed", "failed"])

    failed_ids = sorted(batch.images.filter(status="failed").values_list("pk", flat=True))
    assert len(failed_ids) == 2

    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("classifier:retry-batch", args=[batch.pk]))

    assert [sorted(ids) for ids in sent_messages] == [failed_ids]
    retried = batch.images.filter(pk__in=failed_ids)
    assert {(image.status, image.error) for image in retried} == {("queued", "")}
    assert batch.images.filter(status="done").count() == 1
