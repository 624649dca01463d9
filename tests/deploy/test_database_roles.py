"""The workers' PostgreSQL role: made and kept exact by `provision --with-db-roles`, unable to read
users, tokens or sessions, and enough for a real worker to classify under it."""
from uuid import uuid4

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.urls import reverse

from classifier.models import Image
from deploy.database_roles import (
    current_privileges,
    drop_worker_database_role,
    ensure_worker_database_role,
    grant_statements,
    wanted_privileges,
    worker_role_name,
)
from deploy.provision import provision
from imgsite.aws import client
from imgsite.processes import stop_process
from scaling.models import WorkerNode
from tests.conftest import wait_until
from tests.corpus import photo_jpeg

ON_POSTGRESQL = connection.vendor == "postgresql"
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="database roles are PostgreSQL's; CI runs this on PostgreSQL (DATABASE_URL)")


@pytest.fixture
def worker_role(transactional_db, aws, settings):
    """The workers' role made by provisioning, and its DATABASE_URL as put in SSM; all dropped after."""
    settings.SSM_PARAMETER_PREFIX = f"/imgsite-roles-{uuid4().hex[:8]}"
    changes = provision(db_roles=True)
    url = client("ssm").get_parameter(Name=f"{settings.SSM_PARAMETER_PREFIX}/DATABASE_URL",
                                      WithDecryption=True)["Parameter"]["Value"]
    yield changes, url
    drop_worker_database_role()


def test_the_grants_name_the_columns_a_worker_touches(db):
    assert grant_statements("w") == [
        'GRANT SELECT ("id", "uuid", "owner_id", "batch_id", "file", "thumbnail", "original_name", "content_type", '
        '"size", "sha256", "width", "height", "status", "error", "error_code", "attempts", "requeues", "queued_at", '
        '"sent_at", "message", "started_at", "lease_expires_at", "finished_at", "worker", "model_name", '
        '"reused_from_id") ON "classifier_image" TO "w"',
        'GRANT UPDATE ("status", "started_at", "worker", "attempts", "lease_expires_at", "finished_at", "error", '
        '"error_code", "model_name", "thumbnail", "content_type", "width", "height", "sha256", "sent_at", "message") '
        'ON "classifier_image" TO "w"',
        'GRANT INSERT ("image_id", "rank", "class_index", "wnid", "label", "score", "parents", "search_text") '
        'ON "classifier_prediction" TO "w"',
        'GRANT SELECT ("id") ON "classifier_prediction" TO "w"',
        'GRANT INSERT ("name", "last_heartbeat", "started_at", "draining", "stopped_at") '
        'ON "scaling_workernode" TO "w"',
        'GRANT SELECT ("id", "name", "last_heartbeat", "started_at", "draining", "stopped_at") '
        'ON "scaling_workernode" TO "w"',
        'GRANT UPDATE ("last_heartbeat", "started_at", "draining", "stopped_at") ON "scaling_workernode" TO "w"',
    ]


@pytest.mark.skipif(ON_POSTGRESQL, reason="checks the refusal on SQLite")
def test_on_sqlite_it_says_roles_need_postgresql(db, aws):
    with pytest.raises(ImproperlyConfigured, match="need PostgreSQL"):
        provision(db_roles=True)


@postgresql_only
def test_provisioning_grants_exactly_these_and_then_reports_no_changes(worker_role, settings):
    changes, url = worker_role
    role = worker_role_name()

    assert changes == [
        f'CREATE ROLE "{role}" LOGIN NOINHERIT',
        f"ALTER ROLE \"{role}\" PASSWORD '(new)'",
        f"put the workers' DATABASE_URL (role {role}) in SSM {settings.SSM_PARAMETER_PREFIX}/DATABASE_URL",
        *grant_statements(role),
    ]
    assert url.startswith(f"postgres://{role}:")
    with connection.cursor() as cursor:
        assert current_privileges(cursor, role) == wanted_privileges()
    assert provision(db_roles=True) == []


@postgresql_only
def test_a_grant_made_by_hand_is_revoked(worker_role):
    role = worker_role_name()
    with connection.cursor() as cursor:
        cursor.execute(f'GRANT SELECT ON "auth_user" TO "{role}"')
        cursor.execute(f'GRANT UPDATE ("owner_id") ON "classifier_image" TO "{role}"')

    assert ensure_worker_database_role() == [
        f'REVOKE SELECT ON "auth_user" FROM "{role}"',
        f'REVOKE UPDATE ("owner_id") ON "classifier_image" FROM "{role}"',
    ]
    assert ensure_worker_database_role() == []


@postgresql_only
@pytest.mark.parametrize("sql", [
    "SELECT password FROM auth_user",
    "SELECT digest FROM accounts_apitoken",
    "SELECT session_data FROM django_session",
    "SELECT id FROM classifier_batch",
    "DELETE FROM classifier_image",
    "UPDATE classifier_image SET owner_id = owner_id",
    "INSERT INTO classifier_image (id) VALUES (0)",
    "DELETE FROM classifier_prediction",
    "CREATE TABLE mine (id int)",
])
def test_the_role_cannot_read_users_tokens_or_sessions_nor_delete_or_add_images(worker_role, sql):
    _, url = worker_role
    with psycopg.connect(url) as worker, worker.cursor() as cursor:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cursor.execute(sql)


@postgresql_only
@pytest.mark.e2e
def test_a_real_worker_under_the_role_classifies_and_dispatches(worker_role, workers, alice, empty_queues, settings):
    _, url = worker_role
    # One image a message and two messages a user: the third waits in the outbox until the worker's
    # claim dispatches it, an UPDATE the worker makes under its role.
    settings.IMAGES_PER_MESSAGE = 1
    worker = workers("role-worker", env={"DATABASE_URL": url, "IMAGES_PER_MESSAGE": "1",
                                         "WORKER_HEARTBEAT_SECONDS": "1"})
    files = [SimpleUploadedFile(f"cat-{n}.jpg", photo_jpeg(), "image/jpeg") for n in range(3)]
    alice.post(reverse("classifier:upload"), {"files": files})

    finished = wait_until(lambda: len(Image.objects.filter(status__in=["done", "failed"])) == 3 and
                          list(Image.objects.order_by("original_name")), timeout=180, message="three images")
    assert [(image.status, image.error) for image in finished] == [("done", "")] * 3
    assert all(image.predictions.count() == settings.CLASSIFIER_TOP_K for image in finished)
    assert all(image.worker.startswith("role-worker:") for image in finished)
    wait_until(lambda: WorkerNode.objects.filter(name="role-worker", last_heartbeat__gt=F("started_at")).exists(),
               timeout=30, message="a heartbeat")
    stop_process(worker, timeout=30)
    assert WorkerNode.objects.get(name="role-worker").stopped_at is not None


@postgresql_only
def test_the_command_prints_the_sql_it_would_run(transactional_db, aws, settings, capsys):
    settings.SSM_PARAMETER_PREFIX = f"/imgsite-roles-{uuid4().hex[:8]}"
    role = worker_role_name()

    call_command("provision", "--with-db-roles", "--dry-run")

    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f'would CREATE ROLE "{role}" LOGIN NOINHERIT'
    assert printed[-len(grant_statements(role)):] == [f"would {sql}" for sql in grant_statements(role)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        assert cursor.fetchone() is None
