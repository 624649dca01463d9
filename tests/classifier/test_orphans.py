"""No orphans: a worker's thumbnail of an image deleted meanwhile, originals of an upload whose
transaction failed, a deleted user's files, and the bounded periodic sweep. On the suite's moto server."""
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from classifier import orphans
from classifier.direct_uploads import Declared, commit_upload, start_upload
from classifier.models import Image
from classifier.orphans import sweep_orphans, sweep_orphans_step, thumbnails_of_vanished
from classifier.pipeline import store_thumbnail
from classifier.upload import accept_uploads
from imgsite.node import worker_name
from tests.corpus import photo_jpeg
from tests.web.conftest import bob, make_batch  # noqa: F401  (bob: a second user)

pytestmark = pytest.mark.django_db
LATER = timedelta(days=2)  # past the grace period


def stored(name):
    return default_storage.exists(name)


def put(name):
    return default_storage.write(name, b"x", "image/jpeg")


def claimed(user, count=1):
    batch = make_batch(user, ["queued"] * count, store=True)
    return Image.objects.claim(list(batch.images.values_list("pk", flat=True)), worker_name())


def test_a_thumbnail_stored_for_an_image_deleted_meanwhile_is_deleted(user, aws):
    kept, deleted = claimed(user, 2)
    outcomes = [(image, (), store_thumbnail(image, photo_jpeg(max_side=32)), "", "") for image in (kept, deleted)]
    deleted.delete_with_files()  # the user deletes it while the worker runs
    Image.objects.finish(outcomes, "efficientnet_lite0")

    assert orphans.delete_thumbnails_of_vanished(outcomes) == [outcomes[1][2]]
    assert not stored(outcomes[1][2]) and stored(outcomes[0][2])
    kept.refresh_from_db()
    assert kept.status == "done" and kept.thumbnail.name == outcomes[0][2]


def test_failed_outcomes_and_shared_thumbnails_are_left_alone(user):
    image = make_batch(user, ["done"]).images.get()
    gone = make_batch(user, ["queued"]).images.get()
    outcomes = [(image, (), image.thumbnail.name, "", ""), (gone, (), "", "truncated", "The image is truncated."),
                (gone, (), image.thumbnail.name, "", "")]  # a name another image still uses
    gone.delete()
    assert thumbnails_of_vanished(outcomes) == []
    assert thumbnails_of_vanished([]) == []


def test_the_sweep_deletes_old_objects_no_row_owns(user, aws):
    image = make_batch(user, ["done"], store=True).images.get()
    orphan = put(f"images/{uuid.uuid4()}/original.png")
    shared = put(f"images/{uuid.uuid4()}/thumbnail.jpg")  # a deleted image's thumbnail, reused by another
    Image.objects.filter(pk=image.pk).update(thumbnail=shared)
    foreign = put("elsewhere/notes.txt")
    malformed = put("images/not-a-uuid/original.jpg")

    early = sweep_orphans()  # everything is younger than the grace period
    assert orphan not in early.deleted and stored(orphan)

    dry = sweep_orphans(now=timezone.now() + LATER, dry_run=True)
    assert orphan in dry.deleted and stored(orphan)

    report = sweep_orphans(now=timezone.now() + LATER)
    assert orphan in report.deleted and not stored(orphan)
    for name in (image.file.name, shared, foreign, malformed):
        assert name not in report.deleted and stored(name)
    default_storage.delete_many([foreign, malformed])


def test_originals_of_an_upload_whose_transaction_failed_are_swept(user, aws, monkeypatch):
    before = {name for name, _ in default_storage.list_page("images/")[0]}

    def fail(*args, **kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Image.objects, "bulk_create", fail)
    with pytest.raises(DatabaseError):
        accept_uploads(user, [SimpleUploadedFile("cat.jpg", photo_jpeg(max_side=32))])
    monkeypatch.undo()
    left = {name for name, _ in default_storage.list_page("images/")[0]} - before
    assert len(left) == 1 and not Image.objects.exists()

    assert left <= set(sweep_orphans(now=timezone.now() + LATER).deleted)
    assert not any(stored(name) for name in left)


def test_files_uploaded_straight_to_storage_but_never_committed_are_swept(user, aws, settings):
    started = start_upload(user, [Declared(0, "kept.jpg", 1), Declared(1, "abandoned.jpg", 1)])
    kept, abandoned = [put(slot.key) for slot in started.slots]  # what their presigned POSTs store
    commit_upload(user, started.batch, started.token, [kept])

    assert abandoned not in sweep_orphans().deleted  # its upload may still be committed
    report = sweep_orphans(now=timezone.now() + timedelta(seconds=settings.ORPHAN_GRACE_SECONDS + 60))
    assert abandoned in report.deleted and not stored(abandoned)
    assert kept not in report.deleted and stored(kept)
    # A commit is accepted for 2 × PRESIGNED_UPLOAD_EXPIRY only, long before the sweep may take its files.
    assert 2 * settings.PRESIGNED_UPLOAD_EXPIRY < settings.ORPHAN_GRACE_SECONDS


def test_the_sweep_lists_page_by_page_and_resumes(user, aws, monkeypatch):
    monkeypatch.setattr(orphans, "PAGE_SIZE", 2)
    names = {put(f"images/{uuid.uuid4()}/original.png") for _ in range(5)}

    first = sweep_orphans(now=timezone.now() + LATER, pages=1)
    assert first.listed == 2 and first.start_after
    rest = sweep_orphans(now=timezone.now() + LATER, start_after=first.start_after)
    assert rest.start_after == ""
    assert names <= set(first.deleted) | set(rest.deleted)


def test_the_periodic_step_resumes_where_the_last_stopped(user, aws, monkeypatch, settings):
    from django.core.cache import cache

    cache.delete(orphans.CURSOR)
    monkeypatch.setattr(orphans, "PAGE_SIZE", 1)
    settings.ORPHAN_SWEEP_PAGES = 1
    for _ in range(3):
        put(f"images/{uuid.uuid4()}/original.png")
    first, second = sweep_orphans_step(), sweep_orphans_step()
    assert first.listed == second.listed == 1 and second.start_after > first.start_after


def test_the_command_reports_and_deletes(user, aws):
    orphan = put(f"images/{uuid.uuid4()}/original.png")
    out = StringIO()
    call_command("sweep_orphans", "--grace", "0", "--dry-run", stdout=out)
    assert f"would delete {orphan}" in out.getvalue() and stored(orphan)
    call_command("sweep_orphans", "--grace", "0", stdout=out)
    assert not stored(orphan)


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_deleting_a_user_deletes_their_objects(user, bob, aws, how, django_capture_on_commit_callbacks,  # noqa: F811
                                               django_user_model):
    mine = make_batch(user, ["done", "queued"], store=True)
    theirs = make_batch(bob, ["done"], store=True)
    names = [name for image in mine.images.all() for name in (image.file.name, image.thumbnail.name) if name]
    with django_capture_on_commit_callbacks(execute=True):
        if how == "instance":
            user.delete()
        else:
            django_user_model.objects.filter(username="alice").delete()
    assert not any(stored(name) for name in names)
    assert not Image.objects.filter(owner_id=user.pk).exists()
    assert all(stored(image.file.name) for image in theirs.images.all())
