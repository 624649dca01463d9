"""Accepting uploaded files: validate each one alone, stream it to S3, queue the accepted ones."""
import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from django.conf import settings
from django.db import transaction

from classifier.archives import NO_IMAGES, RefusedArchive, expand_archive, is_archive
from classifier.decoding import UndecodableImage, read_header
from classifier.models import Batch, Image
from classifier.tasks import enqueue

CHUNK = 1024 * 1024


@dataclass
class Refusal:
    name: str
    reason: str


@dataclass
class UploadResult:
    batch: Batch | None = None
    accepted: list[Image] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def clean_filename(name):
    """Display name only: no directories, no control characters, at most 255 characters."""
    name = PureWindowsPath(PurePosixPath(name or "").name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name or "unnamed"
    if len(name) > 255:
        suffix = PurePosixPath(name).suffix[:10]
        name = name[: 255 - len(suffix)] + suffix
    return name


def sha256_of(fileobj):
    digest = hashlib.sha256()
    fileobj.seek(0)
    for chunk in iter(lambda: fileobj.read(CHUNK), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def check_upload(upload):
    """Cheap checks that refuse obviously bad files at once; the worker decodes the rest."""
    if upload.size == 0:
        raise UndecodableImage("The file is empty.")
    if upload.size > settings.MAX_UPLOAD_BYTES:
        raise UndecodableImage(
            f"The file is too large: {upload.size:,} bytes (limit {settings.MAX_UPLOAD_BYTES:,})."
        )
    return read_header(upload.file)


def store_image(batch, upload, header):
    """Stream one upload to S3 and return the unsaved Image row that describes it."""
    name = clean_filename(upload.name)
    image = Image(
        owner=batch.owner, batch=batch, original_name=name, size=upload.size,
        sha256=sha256_of(upload.file), width=header.width, height=header.height,
        content_type=header.content_type,
    )
    image.file.save(name, upload.file, save=False)
    return image


def accept_file(batch, upload, refused):
    """The stored, unsaved Image for one upload, or None after adding its Refusal."""
    try:
        header = check_upload(upload)
    except UndecodableImage as exc:
        refused.append(Refusal(clean_filename(upload.name), str(exc)))
        return None
    return store_image(batch, upload, header)


def accept_archive(batch, upload, refused):
    """Expand a .zip member by member; its non-images are refused one by one."""
    stored = []
    try:
        for member in expand_archive(upload):
            if member.reason:
                refused.append(Refusal(clean_filename(member.name), member.reason))
            elif image := accept_file(batch, member.file, refused):
                stored.append(image)
    except RefusedArchive as exc:
        refused.append(Refusal(clean_filename(upload.name), str(exc)))
        return stored
    if not stored:
        refused.append(Refusal(clean_filename(upload.name), NO_IMAGES))
    return stored


def accept_uploads(user, uploads, batch=None):
    """Validate, store and queue each upload on its own; one bad file never affects the others.

    A .zip is expanded on the server. With `batch`, accepted images join that existing batch.
    """
    result = UploadResult()
    stored = []
    batch = batch or Batch(owner=user)
    for upload in uploads:
        if is_archive(upload):
            stored += accept_archive(batch, upload, result.refused)
        elif image := accept_file(batch, upload, result.refused):
            stored.append(image)
    if not stored:
        result.batch = batch if batch.pk else None
        return result
    with transaction.atomic():
        if batch.pk is None:
            batch.save()
        for image in stored:
            image.batch = batch
        result.accepted = Image.objects.bulk_create(stored)
        ids = [image.pk for image in result.accepted]
        transaction.on_commit(lambda: enqueue(ids))
    result.batch = batch
    return result
