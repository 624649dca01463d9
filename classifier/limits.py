"""What one upload request and one user may upload: the request's budget (files examined,
archive members included, and their bytes) and the user's quotas (images open at once, images
a day, bytes stored). Every upload path charges an UploadBudget, so that a direct upload to S3
can be held to the same limits; an upload straight to S3 that has started and is not committed yet
holds its files' share of the quotas (hold), until it is committed (release) or can no longer be."""
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from classifier.models import BATCH_FULL, Image

DAY = timedelta(days=1)
HELD = "classifier.limits.held:{}"
# How long to suggest waiting when too many images are open: about a batch's worth of work.
OPEN_RETRY_SECONDS = 60
# Limits of one request are about its size (413); limits over time are about waiting (429).
STATUS = {"too_large": 413, "request_images": 413, "request_bytes": 413, "quota_bytes_stored": 413, "batch_full": 413,
          "quota_open_images": 429, "quota_images_per_day": 429}


class LimitReached(Exception):
    """A request or quota limit: `code` for programs (see STATUS), str(exc) for people, and
    `retry_after` seconds when waiting will help."""

    def __init__(self, code, message, retry_after=None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after

    @property
    def status(self):
        return STATUS[self.code]


class UploadBudget:
    """What one upload request may still examine, and accept for its user. examine() and accept()
    charge one file each, or raise LimitReached naming the limit it would break."""

    def __init__(self, user, now=None, excluding=None):
        """The budget of a request by `user`; `excluding`: a started upload whose hold not to count
        (its commit charges its files again)."""
        self.now = now or timezone.now()
        usage = Image.objects.owned_by(user).usage(since=self.now - DAY)
        started = [hold for upload, hold in held(user, self.now).items() if upload != excluding]
        files, size = sum(hold[1] for hold in started), sum(hold[2] for hold in started)
        self.files = settings.MAX_IMAGES_PER_REQUEST
        self.bytes = settings.MAX_REQUEST_EXPANDED_BYTES
        self.open_images = settings.QUOTA_OPEN_IMAGES - usage["open"] - files
        self.images_today = settings.QUOTA_IMAGES_PER_DAY - usage["recent"] - files
        self.bytes_stored = settings.QUOTA_BYTES_STORED - usage["stored"] - size
        self.day_frees_up = usage["oldest_recent"] + DAY if usage["oldest_recent"] else self.now
        self.batch_room = settings.MAX_BATCH_IMAGES

    def problem(self):
        """Why the user can upload nothing at all now (a LimitReached), or None: asked before a
        request's files are read."""
        try:
            self._check_quotas(size=1)
        except LimitReached as limit:
            return limit
        return None

    def examine(self, size):
        """Charge one file, or archive member, of `size` bytes to the request."""
        if self.files < 1:
            raise LimitReached("request_images", f"Too many files in one request (limit "
                                                 f"{settings.MAX_IMAGES_PER_REQUEST:,}, archive members included): "
                                                 "send the rest in another request.")
        if size > self.bytes:
            raise LimitReached("request_bytes", f"The request expands to too many bytes (limit "
                                                f"{settings.MAX_REQUEST_EXPANDED_BYTES:,}, archive members "
                                                "included): send the rest in another request.")
        self.files -= 1
        self.bytes -= size

    def into(self, batch):
        """Also hold the request to the room left in `batch` (MAX_BATCH_IMAGES in all); returns self.
        Two requests into one batch at the same moment may overshoot it by at most one request."""
        self.batch_room = batch.room()
        return self

    def accept(self, size):
        """Charge one accepted image of `size` bytes to the user's quotas and its batch's room."""
        self._check_quotas(size)
        if self.batch_room < 1:
            code, reason = BATCH_FULL
            raise LimitReached(code, reason.format(limit=settings.MAX_BATCH_IMAGES))
        self.batch_room -= 1
        self.open_images -= 1
        self.images_today -= 1
        self.bytes_stored -= size

    def _check_quotas(self, size):
        if self.open_images < 1:
            raise LimitReached("quota_open_images", f"You have the most images waiting or being classified at "
                                                    f"once (limit {settings.QUOTA_OPEN_IMAGES:,}): upload more once "
                                                    "some have finished.", retry_after=OPEN_RETRY_SECONDS)
        if self.images_today < 1:
            wait = max(1, int((self.day_frees_up - self.now).total_seconds()))
            raise LimitReached("quota_images_per_day", f"You have uploaded the most images allowed in 24 hours "
                                                       f"(limit {settings.QUOTA_IMAGES_PER_DAY:,}): try again in "
                                                       f"{duration(wait)}.", retry_after=wait)
        if size > self.bytes_stored:
            raise LimitReached("quota_bytes_stored", f"Your images would take more than your storage (limit "
                                                     f"{settings.QUOTA_BYTES_STORED:,} bytes): delete some "
                                                     "batches first.")


def held(user, now):
    """{upload: (until, files, bytes)}: the user's started uploads that still hold quota."""
    return {upload: hold for upload, hold in (cache.get(HELD.format(user.pk)) or {}).items()
            if hold[0] > now.timestamp()}


def hold(user, upload, files, size, until):
    """Hold `files` images and `size` bytes of the user's quotas for the started `upload` until
    `until` (when its commit can no longer be made)."""
    holds = {**held(user, timezone.now()), upload: (until.timestamp(), files, size)}
    cache.set(HELD.format(user.pk), holds, timeout=2 * settings.PRESIGNED_UPLOAD_EXPIRY)


def release(user, upload):
    """The started `upload` is committed: its files are charged as images now."""
    holds = held(user, timezone.now())
    if holds.pop(upload, None) is not None:
        cache.set(HELD.format(user.pk), holds, timeout=2 * settings.PRESIGNED_UPLOAD_EXPIRY)


def retryable(batch):
    """The failed images of `batch` that may be queued again now: as many as its owner's quota of
    open images leaves room for (a retry is new work, as an upload is). Returns (ids, held back)."""
    failed = batch.images.failed_ids()
    room = max(0, UploadBudget(batch.owner).open_images)
    return failed[:room], len(failed[room:])


def duration(seconds):
    """e.g. "3 h 20 min", "5 min", "40 s"."""
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min" if rest >= 60 else f"{rest} s"
