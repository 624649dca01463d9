"""Accepting uploaded files: validate each one alone, stream it to S3, queue the accepted ones."""
import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from django.conf import settings
from django.db import transaction

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


def accept_uploads(user, uploads):
    """Validate, store and queue each upload on its own; one bad file never affects the others."""
    result = UploadResult()
    stored = []
    batch = Batch(owner=user)
    for upload in uploads:
        try:
            header = check_upload(upload)
        except UndecodableImage as exc:
            result.refused.append(Refusal(clean_filename(upload.name), str(exc)))
            continue
        stored.append(store_image(batch, upload, header))
    if not stored:
        return result
    with transaction.atomic():
        batch.save()
        for image in stored:
            image.batch = batch
        result.accepted = Image.objects.bulk_create(stored)
        ids = [image.pk for image in result.accepted]
        transaction.on_commit(lambda: enqueue(ids))
    result.batch = batch
    return result
