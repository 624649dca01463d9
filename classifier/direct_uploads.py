"""Uploads straight to S3, in two steps, so that the web tier never carries an original's bytes.

Start: the client declares each file's name and size. Each file that the request's budget and
the user's quotas admit (classifier.limits, charged with the declared sizes) gets a key of its
own, images/<uuid>/original, and a presigned POST for exactly that many bytes
(ImageStorage.presigned_post). The keys of one start share a prefix (the first 48 bits of their
UUIDs), so that its commit finds what arrived in one listing per 1,000 objects. The client gets
a signed token naming the files; only the batch is saved.

Commit: the client sends the token and the keys that arrived. A key the token does not name, a file
that is not stored, or one whose size is not the declared one (its object is deleted) is refused;
the budget and quotas are charged again with the real sizes (a file refused for a limit stays
stored, so that the same commit may succeed once the limit allows, until its token expires).
The rows are made in one statement and queued. Nothing the client says of a file's content is
trusted: no earlier result is reused for it (as one is for an upload whose bytes the web tier
hashed), since no one has read its bytes yet.

The worker reads such an original's header before decoding it, refusing what an upload through the
web tier is refused for with the same code and reason, and records its type, dimensions and SHA-256
(classifier.pipeline.read_original). A file never committed is removed by the orphan sweep
(classifier.orphans, after ORPHAN_GRACE_SECONDS); its token expires long before that.
"""
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from classifier.headers import UndecodableImage, size_problem
from classifier.limits import LimitReached, UploadBudget, hold, release
from classifier.models import Batch, Image
from classifier.tasks import dispatch_after_commit
from classifier.upload import Refusal, UploadResult, clean_filename

SALT = "classifier.direct_uploads"
# The stored original's name: its type is unknown until the worker reads it.
ORIGINAL = "original"
UNKNOWN_KEY = ("unknown_key", "Not a file of this upload: commit only the keys that its start gave.")
NOT_UPLOADED = ("not_uploaded", "The file did not arrive in storage: upload it again.")
WRONG_SIZE = ("size_mismatch", "The stored file has {real:,} bytes, not the {declared:,} declared: upload it again.")
EXPIRED = ("upload_expired", "This upload is unknown, someone else's, or older than {seconds:,} s: start it again.")
CONFLICT = ("commit_conflict", "Another request is committing this upload: try again in a moment.")


class NotCommitted(Exception):
    """The whole commit is refused: `code` for programs (upload_expired, commit_conflict), str(exc) for people."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass
class Declared:
    """A file the client is about to upload: its position in the request, name and size."""

    index: int
    name: str
    size: int


@dataclass
class Slot:
    """An admitted file: its key, and the presigned POST ({"url", "fields"}) that uploads it."""

    index: int
    name: str
    key: str
    post: dict


@dataclass
class StartedUpload:
    batch: Batch | None = None
    token: str = ""
    slots: list[Slot] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def original_keys(count):
    """`count` fresh keys images/<uuid>/original whose UUIDs share their first 48 bits, and the
    prefix that lists them all. The rest of each UUID is a random version-4 UUID's."""
    shared = secrets.randbits(48) << 80
    keys = [f"images/{uuid.UUID(int=shared | (uuid.uuid4().int & (2**80 - 1)))}/{ORIGINAL}" for _ in range(count)]
    return keys, f"images/{str(uuid.UUID(int=shared))[:13]}"


def admitted(file, budget):
    """None if `file` may be uploaded, else its Refusal; charges the budget with its declared size."""
    try:
        budget.examine(file.size)
        if problem := size_problem(file.size):
            raise problem
        budget.accept(file.size)
    except (LimitReached, UndecodableImage) as problem:
        return Refusal.of(file.name, problem, index=file.index)
    return None


def start_upload(user, files, batch=None, budget=None):
    """Presigned POSTs for the Declared `files` that the budget (by default a fresh one) admits,
    into `batch` or a new batch, saved only if a file was admitted; the rest are refused."""
    started = StartedUpload()
    batch = batch or Batch(owner=user)
    budget = (budget or UploadBudget(user)).into(batch)
    ready = []
    for file in files:
        if refusal := admitted(file, budget):
            started.refused.append(refusal)
        else:
            ready.append(file)
    if not ready:
        started.batch = batch if batch.pk else None
        return started
    if batch.pk is None:
        batch.save()
    keys, prefix = original_keys(len(ready))
    expires = settings.PRESIGNED_UPLOAD_EXPIRY
    started.slots = [Slot(file.index, clean_filename(file.name), key, default_storage.presigned_post(
        key, file.size, expires)) for file, key in zip(ready, keys)]
    files = [[slot.key, slot.index, slot.name, file.size] for slot, file in zip(started.slots, ready)]
    started.token = signing.dumps({"user": user.pk, "batch": batch.pk, "prefix": prefix, "files": files}, salt=SALT,
                                  compress=True)
    hold(user, prefix, len(ready), sum(file.size for file in ready),
         until=timezone.now() + timedelta(seconds=2 * expires))
    started.batch = batch
    return started


def started_files(user, batch, token):
    """The files of the start that issued `token` ({key: (index, name, size)}) and their
    prefix, if it was this user's into this batch and is recent enough; else NotCommitted."""
    seconds = 2 * settings.PRESIGNED_UPLOAD_EXPIRY
    try:
        upload = signing.loads(token, salt=SALT, max_age=seconds)
    except signing.BadSignature:  # expired ones included
        upload = None
    if not upload or upload.get("user") != user.pk or upload.get("batch") != batch.pk:
        code, reason = EXPIRED
        raise NotCommitted(code, reason.format(seconds=seconds))
    return {key: tuple(rest) for key, *rest in upload["files"]}, upload["prefix"]


def commit_upload(user, batch, token, keys, budget=None):
    """Record the files of a started upload that arrived (their `keys`), each checked against what
    is stored and charged again to the budget with its real size. Committing a key twice is
    harmless: it is listed as accepted again. Returns an UploadResult; NotCommitted if the token
    is not valid here, or another commit of it is running."""
    files, prefix = started_files(user, batch, token)
    keys = list(dict.fromkeys(keys))
    result = UploadResult(batch=batch)
    known = [key for key in keys if key in files]
    stored = default_storage.sizes(prefix) if known else {}
    existing = {str(image.uuid): image for image in
                batch.images.filter(uuid__in=[key.split("/")[1] for key in known])}
    budget = (budget or UploadBudget(user, excluding=prefix)).into(batch)
    rows, unwanted = [], []
    for key in keys:
        if key not in files:
            result.refused.append(Refusal(key[:255], *UNKNOWN_KEY, key=key[:255]))
            continue
        index, name, declared = files[key]
        if image := existing.get(key.split("/")[1]):
            result.accepted.append(image)
            continue
        if (size := stored.get(key)) is None:
            result.refused.append(Refusal(name, *NOT_UPLOADED, index=index, key=key))
            continue
        if size != declared:
            code, reason = WRONG_SIZE
            result.refused.append(Refusal(name, code, reason.format(real=size, declared=declared), index, key))
            unwanted.append(key)
            continue
        try:
            budget.examine(size)
            budget.accept(size)
        except LimitReached as limit:
            result.refused.append(Refusal.of(name, limit, index=index, key=key))
            continue
        rows.append(Image(uuid=uuid.UUID(key.split("/")[1]), owner=user, batch=batch, original_name=name,
                          size=size, file=key))
    if unwanted:
        default_storage.delete_many(unwanted)
    if rows:
        try:
            result.accepted += record(rows)
        except IntegrityError:
            raise NotCommitted(*CONFLICT) from None
    release(user, prefix)
    return result


def record(images):
    """Save the new rows (their type, dimensions and SHA-256 empty: the worker reads them) and
    queue them; returns the rows."""
    with transaction.atomic():
        created = Image.objects.bulk_create(images)
        dispatch_after_commit({image.owner_id for image in created})
    return created
