"""Uploads straight to storage through the API: start (declared names and sizes → presigned POSTs),
POST each file to the suite's moto server as a client would, commit the keys that arrived. Lies
about sizes, keys from elsewhere, expired or foreign tokens and quotas are refused, each saying why."""
import base64
import hashlib
import json
from datetime import datetime, timedelta

import pytest
import requests
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from classifier.limits import held
from classifier.models import Batch, Image
from imgsite.aws import client
from tests.corpus import photo_jpeg
from tests.web.conftest import make_batch, stored
from tests.web.test_reuse import classified_earlier, sent_ids
from tests.web.test_upload_limits import existing_images

pytestmark = pytest.mark.django_db

CAT = photo_jpeg("chelsea", max_side=64)
COFFEE = photo_jpeg("coffee", max_side=80)


def declared(name, data, **extra):
    return {"name": name, "size": len(data), **extra}


def start(client, files, batch=None):
    url = reverse("classifier:api:batch-uploads", args=[batch]) if batch else reverse("classifier:api:uploads")
    return client.post(url, {"files": files}, format="json")


def post_file(slot, data):
    """What a browser does with a slot: the policy's fields, then the file, straight to storage."""
    answer = requests.post(slot["post"]["url"], data=slot["post"]["fields"], files={"file": ("blob", data)},
                           timeout=10)
    assert answer.status_code == 204, answer.text
    return slot["key"]


def commit(client, started, keys):
    return client.post(started["commit_url"], {"upload": started["upload"], "keys": keys}, format="json")


def upload(client, files, batch=None):
    """Start, POST each admitted file, commit: the whole flow. `files`: {name: bytes}."""
    response = start(client, [declared(name, data) for name, data in files.items()], batch)
    assert response.status_code == 201, response.content
    started = response.json()
    data = list(files.values())
    keys = [post_file(slot, data[slot["index"]]) for slot in started["files"]]
    return started, commit(client, started, keys)


def test_files_go_straight_to_storage_and_are_queued_once_committed(alice_api, user, aws, sent_messages,
                                                                    django_capture_on_commit_callbacks):
    started = start(alice_api, [declared("cat.jpg", CAT), declared("coffee.jpg", COFFEE)]).json()
    batch = Batch.objects.get()
    assert started["id"] == batch.pk and started["expires_in"] == 900
    assert [(slot["index"], slot["name"]) for slot in started["files"]] == [(0, "cat.jpg"), (1, "coffee.jpg")]
    assert started["refused"] == [] and not Image.objects.exists()  # nothing recorded before the commit
    keys = [slot["key"] for slot in started["files"]]
    assert all(key.startswith("images/") and key.endswith("/original") for key in keys)
    assert keys[0][:20] == keys[1][:20] and keys[0] != keys[1]  # one prefix lists the whole upload

    post_file(started["files"][0], CAT)
    post_file(started["files"][1], COFFEE)
    with django_capture_on_commit_callbacks(execute=True):
        response = commit(alice_api, started, keys)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == batch.pk and body["refused"] == []
    assert [(image["name"], image["status"]) for image in body["images"]] == [("cat.jpg", "queued"),
                                                                              ("coffee.jpg", "queued")]
    cat = Image.objects.get(original_name="cat.jpg")
    assert (cat.file.name, cat.size, str(cat.uuid)) == (keys[0], len(CAT), keys[0].split("/")[1])
    assert cat.content_type == "" and cat.width is None and cat.sha256 == ""  # the worker reads it
    assert sorted(sent_ids(sent_messages)) == sorted(Image.objects.values_list("pk", flat=True))
    head = client("s3").head_object(Bucket=default_storage.bucket_name, Key=default_storage.key(keys[0]))
    assert head["ContentType"] == "application/octet-stream"  # never the client's claim


def test_the_presigned_post_allows_exactly_the_declared_size_under_its_own_key(alice_api, aws):
    started = start(alice_api, [declared("cat.jpg", CAT)]).json()
    [slot] = started["files"]
    fields = slot["post"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", len(CAT), len(CAT)] in conditions
    assert {"key": default_storage.key(slot["key"])} in conditions and fields["key"] == slot["key"]
    assert {"Content-Type": "application/octet-stream"} in conditions
    assert {"Content-Disposition": 'attachment; filename="original"'} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert {"bucket": default_storage.bucket_name} in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(seconds=800) < expires - timezone.now() <= timedelta(seconds=900)


def test_a_lie_about_the_size_is_refused_at_commit_and_its_file_deleted(alice_api, aws, sent_messages):
    started = start(alice_api, [declared("small.jpg", CAT[:100]), declared("honest.jpg", COFFEE)]).json()
    lying, honest = started["files"]
    # moto does not enforce the policy's content-length-range as S3 does: the commit must catch it.
    keys = [post_file(lying, CAT), post_file(honest, COFFEE)]
    response = commit(alice_api, started, keys)

    assert response.status_code == 201
    assert response.json()["refused"] == [{
        "name": "small.jpg", "index": 0, "key": keys[0], "error_code": "size_mismatch",
        "error": f"The stored file has {len(CAT):,} bytes, not the 100 declared: upload it again.",
    }]
    assert list(Image.objects.values_list("original_name", flat=True)) == ["honest.jpg"]
    assert not stored(keys[0]) and stored(keys[1])


def test_keys_outside_the_upload_are_refused_and_left_alone(alice_api, bob_api, bob, aws):
    bobs = make_batch(bob, ["done"], store=True).images.get()
    started, _ = upload(alice_api, {"cat.jpg": CAT})
    other = start(alice_api, [declared("elsewhere.jpg", COFFEE)]).json()  # another start of hers
    elsewhere = post_file(other["files"][0], COFFEE)
    invented = started["files"][0]["key"].replace("/original", "/thumbnail.jpg")

    response = commit(alice_api, started, [bobs.file.name, elsewhere, invented])
    assert response.status_code == 400
    assert {(refusal["key"], refusal["index"], refusal["error_code"]) for refusal in response.json()["refused"]} == {
        (bobs.file.name, None, "unknown_key"), (elsewhere, None, "unknown_key"), (invented, None, "unknown_key")}
    assert Image.objects.filter(owner__username="alice").count() == 1
    assert stored(bobs.file.name) and stored(elsewhere)


def test_a_file_that_never_arrived_is_refused(alice_api, aws):
    started = start(alice_api, [declared("lost.jpg", CAT)]).json()
    response = commit(alice_api, started, [started["files"][0]["key"]])
    assert response.status_code == 400
    assert response.json()["refused"][0]["error_code"] == "not_uploaded"
    assert not Image.objects.exists()


def test_a_token_is_for_its_user_its_batch_and_a_while_only(alice_api, user, bob_api, aws, settings):
    started = start(alice_api, [declared("cat.jpg", CAT)]).json()
    key = post_file(started["files"][0], CAT)
    elsewhere = make_batch(user, [])
    assert commit(bob_api, started, [key]).status_code == 404  # her batch is not his
    into_another = alice_api.post(reverse("classifier:api:batch-commit", args=[elsewhere.pk]),
                                  {"upload": started["upload"], "keys": [key]}, format="json")
    assert into_another.status_code == 400 and into_another.json()["error_code"] == "upload_expired"
    forged = started["upload"][:-2] + ("AA" if not started["upload"].endswith("AA") else "BB")
    assert commit(alice_api, {**started, "upload": forged}, [key]).json()["error_code"] == "upload_expired"

    settings.PRESIGNED_UPLOAD_EXPIRY = 0  # as if the commit came long after the start
    response = commit(alice_api, started, [key])
    assert response.status_code == 400 and response.json()["detail"].startswith("This upload is unknown, someone")
    assert not Image.objects.exists()


def test_committing_again_adds_nothing(alice_api, aws):
    started, first = upload(alice_api, {"cat.jpg": CAT})
    again = commit(alice_api, started, [started["files"][0]["key"]])
    assert again.status_code == 201 and again.json()["images"] == first.json()["images"]
    assert Image.objects.count() == 1


def test_files_of_the_same_name_are_told_apart_by_position(alice_api, aws, settings):
    settings.QUOTA_IMAGES_PER_DAY = 1
    response = start(alice_api, [declared("photo.jpg", CAT), declared("photo.jpg", COFFEE), declared("e.jpg", b"")])
    assert response.status_code == 201
    body = response.json()
    assert [slot["index"] for slot in body["files"]] == [0]
    assert [(refusal["index"], refusal["error_code"]) for refusal in body["refused"]] == [
        (1, "quota_images_per_day"), (2, "empty")]


def test_quotas_are_charged_at_the_start_with_the_declared_sizes(alice_api, user, aws, settings):
    settings.QUOTA_OPEN_IMAGES = 2
    existing_images(user, 2, status="queued")
    response = start(alice_api, [declared("cat.jpg", CAT)])
    assert response.status_code == 429 and response.json()["error_code"] == "quota_open_images"
    assert int(response["Retry-After"]) > 0 and Batch.objects.count() == 1  # no batch for nothing

    settings.QUOTA_OPEN_IMAGES, settings.QUOTA_BYTES_STORED = 100, 2000 + len(CAT)
    response = start(alice_api, [declared("big.jpg", b"x" * 5000)])
    assert response.status_code == 413
    assert response.json()["refused"][0]["error_code"] == "quota_bytes_stored"


def test_quotas_are_charged_again_at_the_commit_with_the_stored_sizes(alice_api, user, aws, settings):
    settings.QUOTA_BYTES_STORED = len(CAT) + len(COFFEE) + 500
    started = start(alice_api, [declared("cat.jpg", CAT), declared("coffee.jpg", COFFEE)]).json()
    keys = [post_file(started["files"][0], CAT), post_file(started["files"][1], COFFEE)]
    existing_images(user, 1, status="done", size=len(COFFEE))  # stored meanwhile, by another upload

    response = commit(alice_api, started, keys)
    assert response.status_code == 201
    assert [(refusal["index"], refusal["error_code"]) for refusal in response.json()["refused"]] == [
        (1, "quota_bytes_stored")]
    assert stored(keys[1])  # kept: the same commit may succeed once there is room, until the token expires
    Image.objects.filter(original_name="0.jpg").delete()
    response = commit(alice_api, started, keys)
    assert response.status_code == 201 and len(response.json()["images"]) == 2 and response.json()["refused"] == []


def test_a_full_batch_is_refused_at_the_start(alice_api, user, settings):
    settings.MAX_BATCH_IMAGES = 1
    batch = make_batch(user, ["done"])
    response = start(alice_api, [declared("cat.jpg", CAT)], batch=batch.pk)
    assert response.status_code == 413 and response.json()["detail"].startswith("The batch is full")


def test_a_start_into_a_batch_adds_to_it_and_another_users_batch_is_not_found(alice_api, bob_api, user, aws):
    batch = make_batch(user, ["done"])
    started, response = upload(alice_api, {"more.jpg": CAT}, batch=batch.pk)
    assert response.status_code == 201 and started["id"] == batch.pk and batch.images.count() == 2
    assert start(bob_api, [declared("cat.jpg", CAT)], batch=batch.pk).status_code == 404


def test_nothing_said_of_the_content_is_trusted_not_even_a_digest_of_earlier_bytes(
        alice_api, user, aws, sent_messages, django_capture_on_commit_callbacks):
    # Other bytes than the earlier cat's, declared with the cat's digest: the worker must read them.
    classified_earlier(user, data=CAT)
    started = start(alice_api, [declared("again.jpg", COFFEE, sha256=hashlib.sha256(CAT).hexdigest())]).json()
    with django_capture_on_commit_callbacks(execute=True):
        result = commit(alice_api, started, [post_file(started["files"][0], COFFEE)]).json()

    again = Image.objects.get(uuid=result["images"][0]["id"])
    assert (result["images"][0]["status"], again.status, again.reused_from, again.sha256) == (
        "queued", "queued", None, "")
    assert sent_ids(sent_messages) == [again.pk]


def test_a_start_counts_as_an_upload_for_the_rate_limit_and_a_commit_does_not(alice_api, aws, settings):
    settings.UPLOAD_RATE_LIMIT = "1/min"
    started, committed = upload(alice_api, {"cat.jpg": CAT})
    assert committed.status_code == 201
    again = start(alice_api, [declared("coffee.jpg", COFFEE)])
    assert again.status_code == 429 and again.json()["detail"].startswith("Too many uploads (limit 1/min per user)")
    assert commit(alice_api, started, [started["files"][0]["key"]]).status_code == 201


def test_a_started_upload_holds_its_share_of_the_quotas_until_committed_or_expired(alice_api, user, aws, settings):
    settings.QUOTA_OPEN_IMAGES = 3
    first = start(alice_api, [declared("a.jpg", CAT), declared("b.jpg", CAT)]).json()
    second = start(alice_api, [declared("c.jpg", CAT), declared("d.jpg", CAT)]).json()
    assert len(first["files"]) == 2 and len(second["files"]) == 1
    assert [refusal["error_code"] for refusal in second["refused"]] == ["quota_open_images"]

    # Committing the first turns its hold into two open images: nothing more is free, and its
    # own commit is not refused for the quota it held.
    assert commit(alice_api, first, [post_file(slot, CAT) for slot in first["files"]]).status_code == 201
    assert start(alice_api, [declared("e.jpg", CAT)]).status_code == 429
    # Once the second start can no longer be committed, its hold lapses.
    later = timezone.now() + timedelta(seconds=2 * settings.PRESIGNED_UPLOAD_EXPIRY + 1)
    assert [files for _, files, _ in held(user, timezone.now()).values()] == [1]  # the second's
    assert held(user, later) == {}
