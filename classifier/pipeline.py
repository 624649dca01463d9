"""The one classification path: read → decode → model input and thumbnail → batched model calls.

The worker reads originals from S3 and stores thumbnails (`classify_stored`); `manage.py
classify`, the benchmarks and the tests read files (`classify_files`). Both go through
`classify()`, so the path that is tested and timed is the path that serves users, and the
same bytes get the same labels either way.
"""
import hashlib
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from classifier.decode_budget import memory_reserved
from classifier.decoding import make_thumbnail, open_image
from classifier.headers import UndecodableImage, read_header
from classifier.inference import MAX_BATCH, get_classifier, top_labels_of
from classifier.models import thumbnail_key

log = logging.getLogger(__name__)

# A JPEG is decoded at the smallest DCT scale that keeps both sides at least this long: four
# times the model's 256-pixel resize target. Twice it was faster but moved the probabilities
# past the tolerance tests/classifier/test_pipeline.py holds the worker to (bench/README.md).
DECODE_MIN_SIDE = 1024
MISSING = ("missing", "The uploaded file is missing from storage.")
TIMED_OUT = ("timeout", "Took longer than {seconds} s to classify; gave up.")


@dataclass
class Result:
    """One source's outcome: its labels (and thumbnail, when asked for), or why there are none."""

    source: object
    labels: tuple = ()
    thumbnail: bytes = b""
    code: str = ""
    error: str = ""

    @property
    def ok(self):
        return not self.code


@dataclass
class Prepared:
    result: Result
    tensor: np.ndarray | None = None


def prepare(source, read, classifier, thumbnails):
    """Read one source and make its model input (and thumbnail)."""
    return guarded(source, lambda: make(source, read(source), classifier, thumbnails))


def make(source, data, classifier, thumbnails):
    """Decode one source's bytes into its model input (and thumbnail)."""
    with memory_reserved(data, min_side=DECODE_MIN_SIDE):  # the process's decode budget
        picture = open_image(data, min_side=DECODE_MIN_SIDE)
        tensor = classifier.preprocess(picture)
        thumbnail = make_thumbnail(picture) if thumbnails else b""
    return Prepared(Result(source, thumbnail=thumbnail), tensor)


UNPREPARED = (UndecodableImage, OSError, ValueError)


def guarded(source, step):
    """`step()`'s Prepared, or one that says why the source could not be read or decoded."""
    try:
        return step()
    except UNPREPARED as problem:
        return unprepared(source, problem)


def unprepared(source, problem):
    if isinstance(problem, UndecodableImage):
        return Prepared(Result(source, code=problem.code, error=str(problem)))
    log.warning("could not prepare %s: %s", source, problem)
    return Prepared(Result(source, code="unreadable", error=f"The image could not be read ({problem})."))


def prepared_in_pools(sources, read, classifier, thumbnails, threads):
    """Prepared sources, in order: each read in an I/O thread (an S3 round trip is mostly waiting),
    then decoded in a decoding thread. Decoding takes CPU and memory, so it runs in as many threads
    as there are cores; more only contend for the GIL and hold more pictures at once."""
    def fetch(source):
        try:
            data = read(source)
        except UNPREPARED as problem:
            return unprepared(source, problem)
        return threads.decoding.submit(guarded, source, lambda: make(source, data, classifier, thumbnails))

    futures = [threads.io.submit(fetch, source) for source in sources]
    try:
        for future in futures:
            outcome = future.result()
            yield outcome.result() if isinstance(outcome, Future) else outcome
    finally:  # stopped early (a deadline): reads not yet started are not made for nothing
        for future in futures:
            future.cancel()


def chunks(items, size):
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def classify(sources, read, *, classifier=None, top_k=None, thumbnails=False, pool=None):
    """Yield a list of Results per model call (MAX_BATCH sources), in the sources' order.

    `read(source)` returns the bytes or raises UndecodableImage. With a `pool`, sources are
    read and decoded in its threads (Pools) while the model runs on the first ones ready."""
    classifier = classifier or get_classifier()
    top_k = top_k or settings.CLASSIFIER_TOP_K
    prepared = (prepared_in_pools(sources, read, classifier, thumbnails, pool) if pool else
                (prepare(source, read, classifier, thumbnails) for source in sources))
    for chunk in chunks(prepared, MAX_BATCH):
        ready = [item for item in chunk if item.tensor is not None]
        for item, labels in zip(ready, top_labels_of(classifier, [item.tensor for item in ready], top_k)):
            item.result.labels = labels
        yield [item.result for item in chunk]


def read_file(path):
    """A file's bytes for the command line; decoding refuses more than MAX_UPLOAD_BYTES."""
    try:
        with open(path, "rb") as file:
            return file.read(settings.MAX_UPLOAD_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UndecodableImage("missing", "No such file.") from None


def classify_files(paths, top_k=None, classifier=None):
    """Yield a Result per path, in order, as each model call finishes."""
    for batch in classify(paths, read_file, classifier=classifier, top_k=top_k, pool=pools()):
        yield from batch


class Pools(NamedTuple):
    """Threads for S3 round trips (mostly waiting: reads and thumbnail writes) and for decoding
    (one a core), which overlap the model's calls."""

    io: ThreadPoolExecutor
    decoding: ThreadPoolExecutor


@cache
def pools():
    return Pools(ThreadPoolExecutor(max_workers=settings.WORKER_IO_THREADS, thread_name_prefix="io"),
                 ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="decode"))


def read_original(image):
    data = default_storage.read(image.file.name, limit=settings.MAX_UPLOAD_BYTES)
    if data is None:
        raise UndecodableImage(*MISSING)
    if not image.content_type:  # uploaded straight to S3 (classifier.direct_uploads): never read yet
        describe_original(image, data)
    return data


def describe_original(image, data):
    """Check an original the web tier never read as an upload through the web tier is checked (the
    same refusals: UndecodableImage), and set on `image`, for Image.objects.finish to record, its
    SHA-256, type and dimensions."""
    image.sha256 = hashlib.sha256(data).hexdigest()
    header = read_header(data)
    image.content_type, image.width, image.height = header.content_type, header.width, header.height


def store_thumbnail(image, data):
    return default_storage.write(thumbnail_key(image, "thumbnail.jpg"), data, "image/jpeg")


def timed_out(image):
    return (image, (), "", TIMED_OUT[0], TIMED_OUT[1].format(seconds=settings.TASK_SOFT_TIME_LIMIT))


def classify_stored(images, classifier=None, deadline=None):
    """The worker's run over claimed images: originals from S3, each batch's thumbnails stored
    while the next batch is in the model. Returns (image, labels, thumbnail key, code, reason)
    outcomes, as Image.objects.finish records them. Images not reached by the monotonic
    `deadline` fail as timed out."""
    threads = pools()
    outcomes, storing = [], []
    with closing(classify(images, read_original, classifier=classifier, thumbnails=True, pool=threads)) as batches:
        for batch in batches:
            for result in batch:
                if result.ok:
                    storing.append((result, threads.io.submit(store_thumbnail, result.source, result.thumbnail)))
                else:
                    outcomes.append((result.source, (), "", result.code, result.error))
            if deadline is not None and time.monotonic() > deadline:
                break
    outcomes += [(result.source, result.labels, key.result(), "", "") for result, key in storing]
    reached = {outcome[0].pk for outcome in outcomes}
    return outcomes + [timed_out(image) for image in images if image.pk not in reached]
