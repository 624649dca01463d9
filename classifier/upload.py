"""Accepting uploaded files: validate each one alone within the request's budget and the user's
quotas (classifier.limits), stream it to S3, queue the accepted ones."""
import hashlib
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from classifier.archives import NO_IMAGES, RefusedArchive, expand_archive, is_archive
from classifier.headers import UndecodableImage, read_header, size_problem
from classifier.limits import LimitReached, UploadBudget
from classifier.models import Batch, Image, image_key
from classifier.tasks import dispatch_after_commit


@dataclass
class Refusal:
    """A file refused at upload: its name, a machine-readable code and a reason a person can read."""

    name: str
    code: str
    reason: str
    index: int | None = None  # an upload straight to S3: the file's position in the declared list
    key: str = ""  # and the key it was given, once it had one

    @classmethod
    def of(cls, name, problem, **where):
        return cls(clean_filename(name), problem.code, str(problem), **where)


@dataclass
class UploadResult:
    batch: Batch | None = None
    accepted: list[Image] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    reused: int = 0  # accepted images done at once with the result of an earlier identical upload


def oversized_body(request):
    """The request's declared length when it is over MAX_REQUEST_BYTES (refused before reading), else 0."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    length = int(length) if length.isascii() and length.isdigit() else 0
    return length if length > settings.MAX_REQUEST_BYTES else 0


def clean_filename(name):
    """Display name only: no directories, no control characters, at most 255 characters."""
    name = PureWindowsPath(PurePosixPath(name or "").name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name or "unnamed"
    if len(name) > 255:
        suffix = PurePosixPath(name).suffix[:10]
        name = name[: 255 - len(suffix)] + suffix
    return name


def check_upload(upload):
    """Cheap checks that refuse obviously bad files at once (the worker decodes the rest).
    Returns the header and the SHA-256 of the bytes, from one read of them."""
    if problem := size_problem(upload.size):
        raise problem
    upload.file.seek(0)
    data = upload.file.read()
    upload.file.seek(0)
    return read_header(data), hashlib.sha256(data).hexdigest()


def describe_image(batch, upload, header, sha256):
    """The unsaved Image row for a checked upload (its file not stored yet)."""
    return Image(
        owner=batch.owner, batch=batch, original_name=clean_filename(upload.name), size=upload.size,
        sha256=sha256, width=header.width, height=header.height, content_type=header.content_type,
    )


def store_file(image, upload):
    """Stream the upload to S3 under the image's UUID key, typed as detected; touches no database."""
    upload.file.seek(0)
    image.file.name = default_storage.write(image_key(image, image.original_name), upload.file, image.content_type)
    return image


def checked(upload, refused):
    """The upload's (header, sha256), or None after adding its Refusal."""
    try:
        return check_upload(upload)
    except UndecodableImage as problem:
        refused.append(Refusal.of(upload.name, problem))
        return None


def charged(budget, upload, refused):
    """True if the user's quotas admit one more image of this upload's size, else False after
    adding its Refusal."""
    try:
        budget.accept(upload.size)
    except LimitReached as limit:
        refused.append(Refusal.of(upload.name, limit))
        return False
    return True


def accept_file(batch, upload, refused, budget):
    """The stored, unsaved Image for one archive member, or None after adding its Refusal."""
    found = checked(upload, refused)
    if not found or not charged(budget, upload, refused):
        return None
    return store_file(describe_image(batch, upload, *found), upload)


def store_all(batch, uploads):
    """Stream checked (upload, header, sha256) to S3 a few at a time, so that their round trips
    overlap. The rows are made first, in this thread: the others never touch the database."""
    images = [describe_image(batch, *upload) for upload in uploads]
    with ThreadPoolExecutor(max_workers=settings.UPLOAD_STORE_THREADS) as pool:
        return list(pool.map(store_file, images, [upload for upload, _, _ in uploads]))


def accept_archive(batch, upload, refused, budget):
    """Expand a .zip member by member, each charged to the request's budget; its non-images are
    refused one by one."""
    stored = []
    try:
        for member in expand_archive(upload, admit=budget.examine):
            if member.problem:
                refused.append(Refusal.of(member.name, member.problem))
            elif image := accept_file(batch, member.file, refused, budget):
                stored.append(image)
    except RefusedArchive as problem:
        refused.append(Refusal.of(upload.name, problem))
        return stored
    except LimitReached as limit:
        refused.append(Refusal(clean_filename(upload.name), limit.code, f"Only part of the archive was expanded. "
                                                                         f"{limit}"))
        return stored
    if not stored:
        refused.append(Refusal(clean_filename(upload.name), *NO_IMAGES))
    return stored


def accept_uploads(user, uploads, batch=None, budget=None):
    """Validate, store and queue each upload on its own; one bad file never affects the others.

    A .zip is expanded on the server. With `batch`, accepted images join that existing batch.
    Files past the request's budget or the user's quotas (`budget`, by default a fresh one) are
    refused with the limit they would break.
    """
    result = UploadResult()
    stored, ready = [], []
    batch = batch or Batch(owner=user)
    budget = (budget or UploadBudget(user)).into(batch)
    for upload in uploads:
        if is_archive(upload):
            stored += accept_archive(batch, upload, result.refused, budget)
            continue
        try:
            budget.examine(upload.size)
        except LimitReached as limit:
            result.refused.append(Refusal.of(upload.name, limit))
            continue
        if (found := checked(upload, result.refused)) and charged(budget, upload, result.refused):
            ready.append((upload, *found))
    stored += store_all(batch, ready)
    if not stored:
        result.batch = batch if batch.pk else None
        return result
    with transaction.atomic():
        if batch.pk is None:
            batch.save()
        result.accepted = Image.objects.bulk_create(stored)
        reused = Image.objects.reuse_results(result.accepted, settings.CLASSIFIER_MODEL)
        result.reused = len(reused)
        if len(reused) < len(result.accepted):
            dispatch_after_commit([user.pk])
    result.batch = batch
    return result
