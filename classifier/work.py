"""What a worker does with claimed images: fetch from S3, decode, classify, store results."""
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from botocore.exceptions import ClientError
from django.conf import settings

from classifier.decoding import UndecodableImage, make_thumbnail, open_image
from classifier.inference import classify_batch, get_classifier
from classifier.models import Image
from imgsite.aws import client

log = logging.getLogger(__name__)


@cache
def worker_name():
    """The node (from the fleet that launched it) and the process, e.g. 'local-3:12345'."""
    node = os.environ.get("WORKER_NODE") or socket.gethostname()
    return f"{node}:{os.getpid()}"


@cache
def s3_pool():
    """Threads for S3 round trips: a group's objects are fetched and stored concurrently."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3")


def read_original(image):
    """The uploaded bytes, or None when the object is gone (e.g. a local S3 that restarted).

    One GetObject on the shared client: django-storages' file objects cost a HEAD and a
    transfer-manager round trip per image, which dominated a worker's time."""
    try:
        return client("s3").get_object(Bucket=settings.IMAGE_BUCKET, Key=image.file.name)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def store_thumbnail(image, picture):
    key = image.thumbnail.field.generate_filename(image, "thumbnail.jpg")
    client("s3").put_object(Bucket=settings.IMAGE_BUCKET, Key=key, Body=make_thumbnail(picture),
                            ContentType="image/jpeg", ServerSideEncryption="AES256")
    return key


def decode_all(images):
    """Decode each claimed image; failures are recorded at once and dropped from the batch."""
    decoded = []
    for image, data in zip(images, s3_pool().map(read_original, images)):
        if data is None:
            image.mark_failed("The uploaded file is missing from storage.")
            continue
        try:
            decoded.append((image, open_image(data)))
        except UndecodableImage as exc:
            image.mark_failed(str(exc))
    return decoded


def classify_claimed(images):
    """Classify the claimed images (in batched model calls); returns how many ended done."""
    decoded = decode_all(images)
    if not decoded:
        return 0
    results = classify_batch([picture for _, picture in decoded])
    model_name = get_classifier().name
    good = [(image, picture, result) for (image, picture), result in zip(decoded, results) if result.ok]
    for (image, _), result in zip(decoded, results):
        if not result.ok:
            image.mark_failed(result.error)
    thumbnails = s3_pool().map(store_thumbnail, [image for image, _, _ in good], [picture for _, picture, _ in good])
    done = Image.objects.finish(
        [(image, result.labels, thumbnail) for (image, _, result), thumbnail in zip(good, thumbnails)], model_name
    )
    log.info("classified %d of %d images", done, len(images))
    return done
