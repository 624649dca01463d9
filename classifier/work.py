"""What a worker does with claimed images: fetch from S3, decode, classify, store results."""
import logging
import os
import socket
from functools import cache

from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from classifier.decoding import UndecodableImage, make_thumbnail, open_image
from classifier.inference import classify_batch, get_classifier

log = logging.getLogger(__name__)


@cache
def worker_name():
    """The node (from the fleet that launched it) and the process, e.g. 'local-3:12345'."""
    node = os.environ.get("WORKER_NODE") or socket.gethostname()
    return f"{node}:{os.getpid()}"


def read_original(image):
    """The uploaded bytes, or None when the object is gone (e.g. a local S3 that restarted)."""
    try:
        with default_storage.open(image.file.name, "rb") as fileobj:
            return fileobj.read()
    except FileNotFoundError:
        return None
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def decode_all(images):
    """Decode each claimed image; failures are recorded at once and dropped from the batch."""
    decoded = []
    for image in images:
        data = read_original(image)
        if data is None:
            image.mark_failed("The uploaded file is missing from storage.")
            continue
        try:
            decoded.append((image, open_image(data)))
        except UndecodableImage as exc:
            image.mark_failed(str(exc))
    return decoded


def store_thumbnail(image, picture):
    return default_storage.save(image.thumbnail.field.generate_filename(image, "thumbnail.jpg"),
                                ContentFile(make_thumbnail(picture)))


def classify_claimed(images):
    """Classify the claimed images in one model call; returns how many ended done."""
    decoded = decode_all(images)
    if not decoded:
        return 0
    results = classify_batch([picture for _, picture in decoded])
    model_name = get_classifier().name
    done = 0
    for (image, picture), result in zip(decoded, results):
        if not result.ok:
            image.mark_failed(result.error)
            continue
        done += image.mark_done(result.labels, model_name, thumbnail=store_thumbnail(image, picture))
    log.info("classified %d of %d images", done, len(images))
    return done
