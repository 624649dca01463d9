"""The OpenAPI schema validates, and a property-based run of the API against it finds no server error."""
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from django.urls import reverse
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.models import ApiToken
from tests.web.conftest import make_batch

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(django_settings.VAR_DIR) / "artifacts"


def test_the_schema_is_valid_openapi(client):
    schema = client.get(reverse("classifier:api:schema")).json()
    validate(schema)
    assert set(schema["paths"]) == {
        "/api/v1/batches", "/api/v1/batches/{id}", "/api/v1/batches/{id}/images", "/api/v1/batches/{id}/retry",
        "/api/v1/batches/uploads", "/api/v1/batches/{id}/uploads", "/api/v1/batches/{id}/commit",
        "/api/v1/images", "/api/v1/images/{id}", "/api/v1/images/{id}/urls",
    }
    upload = schema["paths"]["/api/v1/batches"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["$ref"].endswith("/UploadRequestRequest")


def test_the_docs_page_renders_without_a_cdn(client):
    html = client.get(reverse("classifier:api:docs")).content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()


@pytest.fixture
def keep_connection(db):
    """Calls through the real WSGI app must not close the connection (and so end the test's
    transaction) after each request; Django's own test client disconnects the same handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owned(user, aws, settings):
    """Alice's token and a batch of hers, so that generated ids sometimes point at real objects."""
    settings.API_RATE_LIMIT = "100000/min"
    batch = make_batch(user)
    return {"token": ApiToken.objects.issue(user, "schemathesis")[1], "batch": batch.pk,
            "images": [str(image.uuid) for image in batch.images.all()]}


def aim_at_real_objects(case, owned):
    """Point half of the generated ids at Alice's objects; the choice follows the generated id."""
    identifier = (case.path_parameters or {}).get("id")
    if identifier is None:
        return
    if "/batches/" in case.path:
        if isinstance(identifier, int) and identifier % 2 == 0:
            case.path_parameters["id"] = owned["batch"]
    else:
        try:
            number = uuid.UUID(str(identifier)).int
        except ValueError:
            return
        if number % 2 == 0:
            case.path_parameters["id"] = owned["images"][number % len(owned["images"])]


CALLS = Counter()  # (method, path, status) → requests made by the property-based run


@pytest.fixture(scope="module", autouse=True)
def summary():
    """Write how many requests the run made per operation and status, as a test artifact."""
    yield
    if CALLS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        rows = [{"operation": f"{method} {path}", "status": status, "requests": count}
                for (method, path, status), count in sorted(CALLS.items())]
        (ARTIFACTS / "schemathesis.json").write_text(json.dumps(rows, indent=1))


# Loaded once, from the app itself, when this module is collected: before the test database (and
# so the shared cache's table, where DRF counts this anonymous request) exists.
with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_schema_and_never_errs(case, owned, keep_connection):
    aim_at_real_objects(case, owned)
    # A schema cannot say "these bytes must decode as an image", "this file is empty" or "this is the token
    # of an upload you started", so such uploads and commits are rightly refused with 400; every other check,
    # and all checks on other operations, still apply.
    excluded = [positive_data_acceptance] if case.method == "POST" and case.path.endswith(
        ("/batches", "/images", "/uploads", "/commit")) else []
    response = case.call_and_validate(headers={"Authorization": f"Token {owned['token']}"},
                                      excluded_checks=excluded)
    CALLS[(case.method, case.operation.path, response.status_code)] += 1
