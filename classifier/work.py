"""What a worker does with claimed images: fetch from S3, decode, classify, store results."""
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import repeat

import numpy as np
from botocore.exceptions import ClientError
from django.conf import settings

from classifier.decoding import make_thumbnail
from classifier.inference import MAX_BATCH, chunks, get_classifier, or_reason, read_picture, top_labels_of
from classifier.models import Image
from imgsite.aws import client
from scaling.heartbeat import node_name

log = logging.getLogger(__name__)

# Decode JPEGs no smaller than this: the model's input is the central 224/256 of the short
# side, and thumbnails are 256 pixels.
DECODE_MIN_SIDE = 256


@cache
def worker_name():
    """The node (from the fleet that launched it) and the process, e.g. 'local-3:12345'."""
    return f"{node_name()}:{os.getpid()}"


@cache
def s3_pool():
    """Threads for a group's S3 round trips and decoding, which overlap with the model's calls."""
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


def store_thumbnail(image, thumbnail):
    key = image.thumbnail.field.generate_filename(image, "thumbnail.jpg")
    client("s3").put_object(Bucket=settings.IMAGE_BUCKET, Key=key, Body=thumbnail, ContentType="image/jpeg",
                            ServerSideEncryption="AES256")
    return key


@dataclass
class Prepared:
    """One claimed image made ready for the model, or the reason it cannot be."""

    image: Image
    tensor: np.ndarray | None = None
    thumbnail: bytes = b""
    error: str = ""


def prepare(image, classifier):
    """Fetch the original, decode it (no larger than needed) and make the model input and the
    thumbnail. Runs in a pool thread: Pillow and the S3 wait release the GIL."""
    data = read_original(image)
    if data is None:
        return Prepared(image, error="The uploaded file is missing from storage.")
    picture = read_picture(data, min_side=DECODE_MIN_SIDE)
    if isinstance(picture, str):
        return Prepared(image, error=picture)
    made = or_reason(lambda: (classifier.preprocess(picture), make_thumbnail(picture)))
    return Prepared(image, error=made) if isinstance(made, str) else Prepared(image, *made)


def classify_claimed(images):
    """Classify the claimed images; returns how many ended done.

    A pipeline: pool threads fetch and decode the group while the model runs on the first
    images ready, MAX_BATCH at a time, and each batch's thumbnails are stored while the next
    one runs. The group is finished in one transaction."""
    classifier = get_classifier()
    pool = s3_pool()
    stored, labelled = [], []
    for chunk in chunks(pool.map(prepare, images, repeat(classifier)), MAX_BATCH):
        for item in chunk:
            if item.error:
                item.image.mark_failed(item.error)
        ready = [item for item in chunk if not item.error]
        top = top_labels_of(classifier, [item.tensor for item in ready], settings.CLASSIFIER_TOP_K)
        for item, labels in zip(ready, top):
            stored.append(pool.submit(store_thumbnail, item.image, item.thumbnail))
            labelled.append((item.image, labels))
    done = Image.objects.finish(
        [(image, labels, key.result()) for (image, labels), key in zip(labelled, stored)], classifier.name
    )
    log.info("classified %d of %d images", done, len(images))
    return done
