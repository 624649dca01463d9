"""Web fixtures: a second user, API clients with tokens, and images made without a worker."""
import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from classifier.labels import categories
from classifier.models import Batch, Image, Prediction
from tests.corpus import photo_jpeg

TOP5 = [("tabby", 281, 0.62), ("tiger cat", 282, 0.2), ("Egyptian cat", 285, 0.1), ("lynx", 287, 0.03),
        ("doormat", 539, 0.01)]


@pytest.fixture(autouse=True)
def fresh_throttle_counts(django_db_setup, django_db_blocker):
    """DRF counts requests in the shared cache (the test database's cache table), which outlives a test."""
    with django_db_blocker.unblock():
        cache.clear()


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="another horse battery")


def api_client_for(user, name="tests"):
    """An API client that sends a fresh token of `user` (knox: `Authorization: Token <key>`)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.issue(user, name)[1]}")
    return client


@pytest.fixture
def alice_api(user):
    return api_client_for(user)


@pytest.fixture
def bob_api(bob):
    return api_client_for(bob)


def make_batch(user, statuses=("done", "failed", "queued"), store=False):
    """A batch with one image per status; done ones get five predictions. With `store`, real S3 objects."""
    batch = Batch.objects.create(owner=user)
    for number, status in enumerate(statuses):
        image = Image(owner=user, batch=batch, original_name=f"photo{number}.jpg", size=100, sha256="0" * 64,
                      status=status, content_type="image/jpeg", width=451, height=300)
        if store:
            image.file.save("photo.jpg", ContentFile(photo_jpeg(max_side=64)), save=False)
        else:
            image.file.name = f"images/{image.uuid}/original.jpg"
        if status in ("done", "failed"):
            image.started_at = image.finished_at = timezone.now()
            image.worker, image.model_name = "test-node:1", "efficientnet_lite0"
        if status == "done":
            thumbnail = f"images/{image.uuid}/thumbnail.jpg"
            image.thumbnail.name = default_storage.save(thumbnail, ContentFile(b"jpeg")) if store else thumbnail
        if status == "failed":
            image.error = "The image is truncated or corrupt."
        image.save()
        if status == "done":
            Prediction.objects.bulk_create(
                Prediction(image=image, rank=rank, class_index=index, wnid=f"n{index:08d}", label=label, score=score,
                           **categories(index))
                for rank, (label, index, score) in enumerate(TOP5, start=1)
            )
    return batch


def stored(name):
    return default_storage.exists(name)
