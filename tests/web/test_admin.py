"""The admin for job inspection: bounded queries with 1,000 images, read-only pages, actions."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from classifier.models import Batch, Image, Prediction
from scaling.models import ScalingEvent, WorkerNode
from tests.scaling.conftest import start_task
from tests.web.conftest import TOP5, make_batch

pytestmark = pytest.mark.django_db
# Session, user, counts, filters' distinct values, date hierarchy, the page itself: not per row.
MAX_QUERIES = 15


@pytest.fixture
def thousand_images(user, bob):
    """1,000 images in 20 batches of two owners, mostly done with five predictions each."""
    now = timezone.now()
    images = []
    for number in range(20):
        owner = user if number % 2 else bob
        batch = Batch.objects.create(owner=owner)
        for index in range(50):
            status = ["done", "done", "done", "failed", "queued"][index % 5]
            images.append(Image(
                owner=owner, batch=batch, original_name=f"img-{number}-{index}.jpg", size=1000, sha256="0" * 64,
                file=f"images/{number}-{index}/original.jpg", status=status, worker=f"local-{index % 3}:1",
                model_name="efficientnet_lite0", queued_at=now - timedelta(seconds=10), started_at=now,
                finished_at=now if status != "queued" else None,
                thumbnail=f"images/{number}-{index}/thumbnail.jpg" if status == "done" else "",
            ))
    images = Image.objects.bulk_create(images)
    Prediction.objects.bulk_create(
        Prediction(image=image, rank=rank, class_index=index, wnid=f"n{index:08d}", label=label, score=score)
        for image in images if image.status == "done" for rank, (label, index, score) in enumerate(TOP5, start=1)
    )
    assert Image.objects.count() == 1000
    return images


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    print(f"{url}: {len(queries)} queries")
    return response, len(queries)


@pytest.mark.parametrize("url", [
    reverse("admin:classifier_image_changelist"),
    reverse("admin:classifier_image_changelist") + "?status__exact=done&q=tabby",
    reverse("admin:classifier_batch_changelist"),
    reverse("admin:classifier_batch_changelist") + "?progress=failed",
])
def test_changelists_render_1000_images_in_bounded_queries(admin_client, thousand_images, url):
    response, queries = count_queries(admin_client, url)
    assert queries <= MAX_QUERIES


def test_the_image_list_shows_thumbnails_labels_scores_and_latency(admin_client, thousand_images):
    html = admin_client.get(reverse("admin:classifier_image_changelist") + "?status__exact=done").content.decode()
    assert html.count("X-Amz-Signature") == 100  # a presigned thumbnail per row of the page
    assert "tabby" in html and "62.0%" in html and "10.0 s" in html and "local-1:1" in html


def test_the_image_page_is_read_only_with_predictions_inline(admin_client, thousand_images):
    image = next(image for image in thousand_images if image.status == "done")
    url = reverse("admin:classifier_image_change", args=[image.pk])
    response, queries = count_queries(admin_client, url)
    html = response.content.decode()
    assert queries <= MAX_QUERIES
    assert "Egyptian cat" in html and "thumbnail.jpg" in html and "Download the original" in html
    assert 'name="_save"' not in html  # nothing to edit
    assert admin_client.get(reverse("admin:classifier_image_add")).status_code == 403


def test_the_batch_page_links_to_its_images(admin_client, thousand_images):
    batch = thousand_images[0].batch
    response, queries = count_queries(admin_client, reverse("admin:classifier_batch_change", args=[batch.pk]))
    assert queries <= MAX_QUERIES
    assert f"?batch__id__exact={batch.pk}" in response.content.decode()


def test_search_finds_images_by_name_label_and_owner(admin_client, thousand_images):
    url = reverse("admin:classifier_image_changelist")
    assert admin_client.get(url, {"q": "img-3-7.jpg"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "doormat"}).context["cl"].result_count == 600
    assert admin_client.get(url, {"q": "bob"}).context["cl"].result_count == 500


def test_requeue_takes_failed_and_lost_images_only(admin_client, user, sent_messages,
                                                   django_capture_on_commit_callbacks):
    batch = make_batch(user, ["done", "failed", "processing", "processing"])
    done, failed, stale, busy = batch.images.order_by("id")
    long_ago = timezone.now() - timedelta(seconds=settings.RESEND_AFTER_SECONDS + 5)
    Image.objects.filter(pk=stale.pk).update(started_at=long_ago, lease_expires_at=long_ago)
    Image.objects.filter(pk=busy.pk).update(started_at=timezone.now(),
                                            lease_expires_at=timezone.now() + timedelta(seconds=20))

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:classifier_image_changelist"), {
            "action": "requeue", "_selected_action": [image.pk for image in (done, failed, stale, busy)],
        }, follow=True)

    assert "Re-queued 2 image(s); 2 skipped" in response.content.decode()
    assert sorted(sent_messages[0]) == sorted([failed.pk, stale.pk])
    statuses = dict(batch.images.values_list("pk", "status"))
    assert statuses == {done.pk: "done", failed.pk: "queued", stale.pk: "queued", busy.pk: "processing"}


def test_mark_failed_leaves_done_images_alone(admin_client, user):
    batch = make_batch(user, ["done", "queued"])
    admin_client.post(reverse("admin:classifier_image_changelist"), {
        "action": "mark_failed", "_selected_action": list(batch.images.values_list("pk", flat=True)),
    })
    assert sorted(batch.images.values_list("status", "error")) == [
        ("done", ""), ("failed", "Marked as failed by an operator.")]


def test_the_fleet_page_shows_queue_depth_workers_and_decisions(admin_client, aws, empty_queues):
    WorkerNode.objects.create(name="local-1")
    start_task("local-1")
    WorkerNode.objects.create(name="local-2", draining=True)
    ScalingEvent.objects.create(backend="local", visible=8, target=2, reason="queue of 8 images", action="launch 1")

    response, queries = count_queries(admin_client, reverse("admin:scaling_workernode_changelist"))

    html = response.content.decode()
    assert queries <= MAX_QUERIES
    assert "Queue and fleet" in html and "Queue depth unavailable" not in html
    assert "busy" in html and "draining" in html and "queue of 8 images" in html


def test_the_fleet_page_still_renders_without_sqs(admin_client, monkeypatch):
    def unreachable():
        raise ConnectionError("endpoint down")

    monkeypatch.setattr("scaling.overview.queue_depth", unreachable)
    html = admin_client.get(reverse("admin:scaling_workernode_changelist")).content.decode()
    assert "Queue depth unavailable: endpoint down" in html


def test_the_admin_lists_api_tokens_but_never_a_key(admin_client, user):
    token, key = ApiToken.objects.issue(user, "laptop")
    html = admin_client.get(reverse("admin:accounts_apitoken_changelist")).content.decode()
    assert "laptop" in html and "alice" in html
    assert key[:15] not in html  # knox's lookup prefix is a part of the key (the digest, a one-way hash, may show)
    page = admin_client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    assert key[:15] not in page and "Last used" in page
    assert admin_client.get(reverse("admin:accounts_apitoken_add")).status_code == 403


@pytest.fixture
def staff(django_user_model, client):
    """A client for a staff user holding only the permissions given by codename."""
    def login(*codenames):
        from django.contrib.auth.models import Permission

        member = django_user_model.objects.create_user(f"staff-{len(codenames)}", password="x", is_staff=True)
        member.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client.force_login(member)
        return client
    return login


def test_every_admin_action_declares_its_permission():
    from django.contrib import admin

    undeclared = [f"{model.__name__}.{name}" for model, model_admin in admin.site._registry.items()
                  for function, name, _ in model_admin._get_base_actions()
                  if not getattr(function, "allowed_permissions", None)]
    assert undeclared == []


def test_staff_who_may_only_view_see_no_actions_and_cannot_post_one(staff, user, sent_messages):
    viewer = staff("view_image", "view_batch")
    batch = make_batch(user, ["failed", "queued"])
    for url in (reverse("admin:classifier_image_changelist"), reverse("admin:classifier_batch_changelist")):
        response = viewer.get(url)
        assert response.status_code == 200 and 'name="action"' not in response.content.decode()
    ids = list(batch.images.values_list("pk", flat=True))
    for action in ("requeue", "mark_failed"):
        viewer.post(reverse("admin:classifier_image_changelist"), {"action": action, "_selected_action": ids})
    viewer.post(reverse("admin:classifier_batch_changelist"),
                {"action": "retry_failed", "_selected_action": [batch.pk]})
    viewer.post(reverse("admin:classifier_image_changelist"), {"action": "delete_selected", "_selected_action": ids,
                                                               "post": "yes"})
    assert sorted(batch.images.values_list("status", flat=True)) == ["failed", "queued"] and sent_messages == []


def test_staff_who_may_change_images_get_the_actions(staff, user, sent_messages):
    operator = staff("view_image", "change_image")
    batch = make_batch(user, ["queued"])
    html = operator.get(reverse("admin:classifier_image_changelist")).content.decode()
    assert 'value="requeue"' in html and 'value="mark_failed"' in html and 'value="delete_selected"' not in html
    operator.post(reverse("admin:classifier_image_changelist"), {
        "action": "mark_failed", "_selected_action": list(batch.images.values_list("pk", flat=True))})
    assert batch.images.get().status == "failed"


def test_staff_revoke_a_token_in_the_admin(admin_client, user):
    from rest_framework.test import APIClient

    token, key = ApiToken.objects.issue(user, "laptop")
    admin_client.post(reverse("admin:accounts_apitoken_changelist"),
                      {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"})
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert not ApiToken.objects.exists() and api.get(reverse("classifier:api:batches")).status_code == 401
