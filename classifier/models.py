"""Batches of uploaded images, their classification status and their predictions."""
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone

from classifier.labels import categories, search_phrase

FINAL_STATUSES = ("done", "failed")
BATCH_FULL = ("batch_full", "The batch is full: at most {limit:,} images per batch. Upload the rest into a new batch.")
# The stored original's extension, from the type found by reading the file: never from its name.
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
              "image/bmp": ".bmp", "image/tiff": ".tif"}


def image_key(instance, filename):
    """The original's S3 key: a UUID, and the extension of the detected format."""
    return f"images/{instance.uuid}/original{EXTENSIONS.get(instance.content_type, '')}"


def thumbnail_key(instance, filename):
    return f"images/{instance.uuid}/thumbnail.jpg"


class BatchQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def with_counts(self):
        """Annotate image_count and <status>_count, in the same query."""
        return self.annotate(image_count=Count("images"), **{
            f"{status}_count": Count("images", filter=Q(images__status=status)) for status in Image.Status.values
        })


class Batch(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches",
        help_text="The user who uploaded this batch.",
    )
    created_at = models.DateTimeField(default=timezone.now, help_text="When the upload started.")

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="batch_owner_created_idx")]
        verbose_name_plural = "batches"

    def __str__(self):
        return f"Batch {self.pk} by {self.owner}"

    def status_counts(self):
        """{"queued": n, "processing": n, "done": n, "failed": n, "total": n} in one query."""
        return self.images.aggregate(total=Count("pk"), **{
            status: Count("pk", filter=Q(status=status)) for status in Image.Status.values
        })

    def delete_with_files(self):
        """Delete the batch, its images and their S3 objects."""
        delete_with_files(self.images.all(), batches=Batch.objects.filter(pk=self.pk))

    def room(self):
        """How many more images this batch may take: MAX_BATCH_IMAGES in all. Uploads refuse
        the rest (code BATCH_FULL), so that no page, poll or export has to handle more."""
        return max(0, settings.MAX_BATCH_IMAGES - (self.images.count() if self.pk else 0))


class ImageQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def claimable(self, now):
        """Queued images, or images whose claim is older than the task time limit: their
        worker died, and SQS has redelivered the message after the visibility timeout."""
        expired = now - timedelta(seconds=settings.TASK_TIME_LIMIT)
        return self.filter(
            Q(status=Image.Status.QUEUED) | Q(status=Image.Status.PROCESSING, started_at__lt=expired)
        )

    def claim(self, ids, worker):
        """Mark claimable images as processing by `worker` with one conditional UPDATE.

        Returns the images this call claimed: a duplicate delivery of the same message
        claims nothing while the first one is working, and a finished image is never claimed.
        """
        now = timezone.now()
        self.filter(id__in=ids).claimable(now).update(
            status=Image.Status.PROCESSING, started_at=now, worker=worker, attempts=F("attempts") + 1,
            error="", error_code="",
        )
        return list(self.filter(id__in=ids, status=Image.Status.PROCESSING, worker=worker, started_at=now))

    def claimed_by(self, worker):
        """The images `worker` is processing: every worker-side transition is conditioned on it."""
        return self.filter(status=Image.Status.PROCESSING, worker=worker)

    def release(self, ids, worker):
        """Give claimed images back to the queue, e.g. before a transient-error retry."""
        return self.filter(id__in=ids).claimed_by(worker).update(status=Image.Status.QUEUED, started_at=None)

    def stale(self, now, queue_is_empty):
        """Images that no message will finish: claimed by a worker that vanished long ago,
        or queued long ago while the queue holds nothing at all (the message was lost).
        `queue_is_empty()` is asked only when some image has waited queued that long."""
        bound = now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
        lost = Q(status=Image.Status.PROCESSING, started_at__lt=bound)
        waiting = Q(status=Image.Status.QUEUED, queued_at__lt=bound)
        if self.filter(waiting).exists() and queue_is_empty():
            lost |= waiting
        return self.filter(lost)

    def requeue(self, ids):
        """Put the unfinished or failed images among `ids` back in the queue; returns their ids.
        The caller sends their messages (classifier.tasks.requeue)."""
        ids = list(self.filter(id__in=ids).exclude(status=Image.Status.DONE).values_list("pk", flat=True))
        self.filter(id__in=ids).update(
            status=Image.Status.QUEUED, queued_at=timezone.now(), started_at=None, error="", error_code="",
            requeues=F("requeues") + 1,
        )
        return ids

    def fail(self, ids, code, reason):
        """Fail the unfinished images among `ids` (for the sweeper and operators); returns how many."""
        return self.filter(id__in=ids).exclude(status__in=FINAL_STATUSES).update(
            status=Image.Status.FAILED, error_code=code, error=reason[:1000], finished_at=timezone.now()
        )

    def finish(self, outcomes, model_name):
        """Record a worker's results in one transaction; returns how many images ended done.

        `outcomes` holds (image, labels, thumbnail key, error code, reason): labels for a done
        image, a code and a reason for a failed one. An image whose claim was taken over (its
        worker field changed) is skipped: only the worker that claimed it may finish it.
        """
        now = timezone.now()
        done = []
        with transaction.atomic():
            for image, labels, thumbnail, code, reason in outcomes:
                mine = Image.objects.filter(pk=image.pk).claimed_by(image.worker)
                if code:
                    mine.update(status=Image.Status.FAILED, error_code=code, error=reason[:1000], finished_at=now)
                elif mine.update(status=Image.Status.DONE, error="", error_code="", finished_at=now,
                                 model_name=model_name, thumbnail=thumbnail or ""):
                    done.append((image, labels))
            Prediction.objects.bulk_create(
                Prediction(image=image, rank=rank, class_index=label.index, wnid=label.wnid, label=label.label,
                           score=label.score, **categories(label.index))
                for image, labels in done for rank, label in enumerate(labels, start=1)
            )
        return len(done)

    def reuse_results(self, images, model_name):
        """Finish at once each new image whose owner already has the same bytes (same SHA-256)
        done by `model_name`: copy that image's labels, share its thumbnail, and record the
        source in reused_from. Never across users, and never from a source whose thumbnail is
        gone from storage. Returns the ids finished this way.

        Call it inside the transaction that created `images`; the sources are locked, so that
        deleting one cannot remove the thumbnail that a reuse is about to share."""
        digests = {}
        for image in images:
            digests.setdefault(image.owner_id, set()).add(image.sha256)
        found = {}
        for owner_id, sha256s in digests.items():
            sources = self.filter(owner_id=owner_id, sha256__in=sha256s, status=Image.Status.DONE,
                                  model_name=model_name)
            for source in sources.order_by("-finished_at").select_for_update().prefetch_related("predictions"):
                key = (owner_id, source.sha256)  # the latest source whose thumbnail is still stored wins
                if key not in found and (not source.thumbnail or default_storage.exists(source.thumbnail.name)):
                    found[key] = source
        now = timezone.now()
        reused = [(image, found[(image.owner_id, image.sha256)]) for image in images
                  if (image.owner_id, image.sha256) in found]
        for image, source in reused:
            image.status, image.reused_from, image.thumbnail = Image.Status.DONE, source, source.thumbnail.name
            image.model_name, image.started_at, image.finished_at = model_name, now, now
        self.bulk_update([image for image, _ in reused],
                         ["status", "reused_from", "thumbnail", "model_name", "started_at", "finished_at"])
        Prediction.objects.bulk_create(
            Prediction(image=image, rank=p.rank, class_index=p.class_index, wnid=p.wnid, label=p.label, score=p.score,
                       parents=p.parents, search_text=p.search_text)
            for image, source in reused for p in source.predictions.all()
        )
        return {image.pk for image, _ in reused}

    def search_label(self, text):
        """Images with the words of `text` in any of their labels or those labels' broader categories
        ("cat" finds tabbies and tiger cats), best match first: annotated with the matching
        prediction's match_label, match_rank and match_score."""
        phrase = search_phrase(text)
        if not phrase:
            return self
        best = Prediction.objects.filter(image=OuterRef("pk"), search_text__contains=phrase).order_by("-score")
        return self.filter(pk__in=Prediction.objects.filter(search_text__contains=phrase).values("image_id")).annotate(
            match_label=Subquery(best.values("label")[:1]), match_rank=Subquery(best.values("rank")[:1]),
            match_score=Subquery(best.values("score")[:1]),
        ).order_by(F("match_score").desc(nulls_last=True), "-id")

    def with_top_prediction(self):
        """Annotate top_label and top_score (rank 1) as subqueries, so lists need no extra query."""
        top = Prediction.objects.filter(image=OuterRef("pk"), rank=1)
        return self.annotate(top_label=Subquery(top.values("label")[:1]),
                             top_score=Subquery(top.values("score")[:1]))

    def failed_ids(self):
        return list(self.filter(status=Image.Status.FAILED).values_list("pk", flat=True))

    def failed_or_stale_ids(self, now):
        """For operators: the failed images among these, and the stale ones (whatever the queue holds)."""
        stale = Image.objects.stale(now, queue_is_empty=lambda: True).values("pk")
        return list(self.filter(Q(status=Image.Status.FAILED) | Q(pk__in=stale)).values_list("pk", flat=True))

    def delete_listing_files(self):
        """Delete the rows; returns the stored names no remaining image uses (a thumbnail that a
        reused result shares with a remaining image stays). The caller deletes those objects."""
        names = {name for pair in self.values_list("file", "thumbnail") for name in pair if name}
        deleted, _ = self.delete()
        return deleted, names - set(Image.objects.filter(thumbnail__in=names).values_list("thumbnail", flat=True))


class Image(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                            help_text="Public identifier; also names the S3 objects.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images",
                              help_text="The user who uploaded the image.")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="images",
                              help_text="The upload this image arrived in.")
    file = models.FileField(upload_to=image_key, max_length=200,
                            help_text="The original upload in S3, under a UUID key.")
    thumbnail = models.FileField(upload_to=thumbnail_key, max_length=200, blank=True,
                                 help_text="A small JPEG made by the worker, stored next to the original.")
    original_name = models.CharField(max_length=255, help_text="The uploaded filename, sanitised, for display only.")
    content_type = models.CharField(max_length=50, blank=True, help_text="MIME type found by reading the file.")
    size = models.PositiveBigIntegerField(help_text="Size of the upload in bytes.")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the uploaded bytes, hex.")
    width = models.PositiveIntegerField(null=True, blank=True, help_text="Width in pixels, from the header.")
    height = models.PositiveIntegerField(null=True, blank=True, help_text="Height in pixels, from the header.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED,
                              help_text="queued → processing → done, or failed with a reason.")
    error = models.TextField(blank=True, help_text="Why the image failed, in words a person can read.")
    error_code = models.CharField(max_length=30, blank=True,
                                  help_text="Why the image failed, as a machine-readable code, e.g. truncated.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it.")
    requeues = models.PositiveSmallIntegerField(default=0, help_text="How many times the sweeper re-queued it.")
    queued_at = models.DateTimeField(default=timezone.now, help_text="When the image was queued (or re-queued).")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it reached done or failed.")
    worker = models.CharField(max_length=100, blank=True, help_text="The worker that handled it last.")
    model_name = models.CharField(max_length=50, blank=True, help_text="The model that classified it.")
    reused_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reused_by",
        help_text="The owner's earlier upload of the same bytes whose result this image reused, unclassified.",
    )

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status"], name="image_owner_status_idx"),
            models.Index(fields=["batch", "id"], name="image_batch_idx"),
            models.Index(fields=["status", "started_at"], name="image_status_started_idx"),
            models.Index(fields=["status", "finished_at"], name="image_status_finished_idx"),
            models.Index(fields=["owner", "sha256"], name="image_owner_sha256_idx"),
        ]

    def __str__(self):
        return self.original_name

    @property
    def top_prediction(self):
        predictions = list(self.predictions.all())
        return predictions[0] if predictions else None

    @property
    def is_final(self):
        return self.status in FINAL_STATUSES

    @property
    def latency(self):
        """Queued → finished, as a timedelta, once the image is finished."""
        return self.finished_at - self.queued_at if self.is_final and self.finished_at else None

    @property
    def thumbnail_url(self):
        """A presigned URL of the worker's thumbnail, or "" before there is one."""
        return self.thumbnail.url if self.thumbnail else ""

    def delete_with_files(self):
        delete_with_files(Image.objects.filter(pk=self.pk))


class Prediction(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions",
                              help_text="The classified image.")
    rank = models.PositiveSmallIntegerField(help_text="1 for the most likely label.")
    class_index = models.PositiveSmallIntegerField(help_text="ImageNet-1k class index, 0–999.")
    wnid = models.CharField(max_length=12, help_text="WordNet id of the class, e.g. n02123045.")
    label = models.CharField(max_length=100, help_text="Human-readable class name, unique among the classes.")
    score = models.FloatField(help_text="The model's probability for this label, 0–1.")
    parents = models.JSONField(default=list, blank=True,
                               help_text="The label's broader categories from WordNet, nearest first, "
                                         "e.g. domestic cat, cat, feline.")
    search_text = models.TextField(blank=True, help_text="Every name of the label and its categories, as words "
                                                         "between bars, for search (classifier.labels).")

    class Meta:
        ordering = ["image", "rank"]
        constraints = [models.UniqueConstraint(fields=["image", "rank"], name="prediction_image_rank_uniq")]
        indexes = [models.Index(fields=["label", "rank"], name="prediction_label_rank_idx")]

    def __str__(self):
        return f"{self.label} ({self.score:.1%})"

    @property
    def is_low_confidence(self):
        """A guess the model is unsure of: below LOW_CONFIDENCE_BELOW."""
        return self.score < settings.LOW_CONFIDENCE_BELOW


def delete_with_files(images, batches=None):
    """Delete the images' rows (and the `batches`, if given) in one transaction, then, once it
    commits, the images' objects in S3."""
    with transaction.atomic():
        deleted, names = images.delete_listing_files()
        if batches is not None:
            batches.delete()
        transaction.on_commit(lambda: default_storage.delete_many(names))
    return deleted
