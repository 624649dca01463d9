"""Batches of uploaded images, their classification status and their predictions."""
import uuid
from datetime import timedelta
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.db.models import Case, Count, F, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from classifier.labels import categories, search_phrase

FINAL_STATUSES = ("done", "failed")
GAVE_UP = ("gave_up", "Gave up after {attempts} attempts: the worker crashed or timed out every time.")
BATCH_FULL = ("batch_full", "The batch is full: at most {limit:,} images per batch. Upload the rest into a new batch.")
# The stored original's extension, from the type found by reading the file: never from its name.
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
              "image/bmp": ".bmp", "image/tiff": ".tif", "image/avif": ".avif", "image/heif": ".heic"}


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

    def delete_empty(self, now, limit=1000):
        """Delete up to `limit` batches without images made before `now` less the time a started upload
        may still be committed into them (an upload straight to S3 saves its batch at its start);
        returns how many."""
        cutoff = now - timedelta(seconds=2 * settings.PRESIGNED_UPLOAD_EXPIRY)
        ids = list(self.filter(created_at__lt=cutoff, images__isnull=True).values_list("pk", flat=True)[:limit])
        return self.filter(pk__in=ids, images__isnull=True).delete()[0] if ids else 0


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
        """Queued images, or images whose claim has lapsed: its worker stopped extending the
        lease (it died, or gave up past the task time limit), and SQS redelivered the message."""
        return self.filter(
            Q(status=Image.Status.QUEUED) | Q(status=Image.Status.PROCESSING, lease_expires_at__lt=now)
        )

    def claim(self, ids, worker, now=None):
        """Mark claimable images as processing by `worker`, leased for CLAIM_LEASE_SECONDS, with
        conditional UPDATEs; returns the images this call claimed.

        A duplicate delivery claims nothing while the first one holds the lease, a finished
        image is never claimed, and an image already claimed MAX_RECEIVE_COUNT times fails
        instead: whatever re-sent it, it never loops."""
        now = now or timezone.now()
        claimable = self.filter(id__in=ids).claimable(now)
        claimable.filter(attempts__gte=settings.MAX_RECEIVE_COUNT).update(
            status=Image.Status.FAILED, error_code=GAVE_UP[0], finished_at=now,
            error=GAVE_UP[1].format(attempts=settings.MAX_RECEIVE_COUNT),
        )
        claimable.update(
            status=Image.Status.PROCESSING, started_at=now, worker=worker, attempts=F("attempts") + 1,
            lease_expires_at=now + timedelta(seconds=settings.CLAIM_LEASE_SECONDS), error="", error_code="",
        )
        return list(self.filter(id__in=ids, status=Image.Status.PROCESSING, worker=worker, started_at=now))

    def claimed_by(self, worker):
        """The images `worker` is processing: every worker-side transition is conditioned on it."""
        return self.filter(status=Image.Status.PROCESSING, worker=worker)

    def extend_lease(self, ids, worker, until):
        """Keep `worker`'s claim on these images until `until`; returns how many it still holds."""
        return self.filter(id__in=ids).claimed_by(worker).update(lease_expires_at=until)

    def held_until(self, ids, now):
        """When the last live lease on these images lapses, or None when none holds them."""
        return self.filter(id__in=ids, status=Image.Status.PROCESSING, lease_expires_at__gt=now).aggregate(
            until=Max("lease_expires_at"))["until"]

    def release(self, ids, worker):
        """Give claimed images back to the queue, e.g. before a transient-error retry."""
        return self.filter(id__in=ids).claimed_by(worker).update(
            status=Image.Status.QUEUED, started_at=None, lease_expires_at=None)

    # The outbox: accepted images wait here, unsent, until classifier.tasks.dispatch sends them.

    def unsent(self):
        return self.filter(status=Image.Status.QUEUED, sent_at__isnull=True)

    def waiting_in_queue(self):
        """Sent and not claimed yet: their messages wait in SQS."""
        return self.filter(status=Image.Status.QUEUED, sent_at__isnull=False)

    def outbox_owners(self, limit):
        """The owners with unsent images, the longest waiting first."""
        oldest = self.unsent().values("owner_id").annotate(since=Min("queued_at")).order_by("since", "owner_id")
        return [row["owner_id"] for row in oldest[:limit]]

    def waiting_messages(self, owner_ids):
        """{owner id: messages of theirs waiting in SQS}."""
        rows = self.waiting_in_queue().filter(owner_id__in=owner_ids).values("owner_id").annotate(
            messages=Count("message", distinct=True))
        return {row["owner_id"]: row["messages"] for row in rows}

    def take_for_message(self, owner_id, message, now):
        """Take up to IMAGES_PER_MESSAGE of the owner's oldest unsent images for one message;
        returns the ids taken (a concurrent dispatcher may have taken some of them)."""
        ids = list(self.unsent().filter(owner_id=owner_id).order_by("id").values_list("pk", flat=True)[
            :settings.IMAGES_PER_MESSAGE])
        self.unsent().filter(id__in=ids).update(sent_at=now, message=message)
        taken = self.filter(message=message, status=Image.Status.QUEUED).order_by("id")
        return list(taken.values_list("pk", flat=True))

    def unsend(self, message):
        """Put a message's images back in the outbox (sending it failed)."""
        return self.filter(message=message, status=Image.Status.QUEUED).update(sent_at=None, message=None)

    def lost(self, now):
        """Images whose message is gone: sent long ago and still unclaimed, or claimed by a
        worker whose lease ran out long ago (and no redelivery claimed them since)."""
        bound = now - timedelta(seconds=settings.RESEND_AFTER_SECONDS)
        return self.filter(Q(status=Image.Status.QUEUED, sent_at__lt=bound)
                           | Q(status=Image.Status.PROCESSING, lease_expires_at__lt=bound))

    def resend(self, ids):
        """Put lost images back in the outbox, keeping their attempts; returns how many."""
        return self.filter(id__in=ids).lost(timezone.now()).update(
            status=Image.Status.QUEUED, sent_at=None, message=None, started_at=None, lease_expires_at=None,
            requeues=F("requeues") + 1,
        )

    def requeue(self, ids):
        """Put the unfinished or failed images among `ids` back in the outbox for a fresh start
        (their attempts reset); returns their ids. classifier.tasks.requeue sends them."""
        ids = list(self.filter(id__in=ids).exclude(status=Image.Status.DONE).values_list("pk", flat=True))
        self.filter(id__in=ids).update(
            status=Image.Status.QUEUED, queued_at=timezone.now(), sent_at=None, message=None, started_at=None,
            lease_expires_at=None, attempts=0, error="", error_code="", requeues=F("requeues") + 1,
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
        worker field changed) is skipped: only the worker that claimed it may finish it. A few
        queries whatever the group's size: the claims locked, one UPDATE for the done images (and
        one per distinct failure), the predictions in one INSERT.
        """
        now = timezone.now()
        with transaction.atomic():
            mine = set()  # the images still claimed by the worker that reports them, locked
            for worker in {image.worker for image, *_ in outcomes}:
                mine.update(self.filter(pk__in=[image.pk for image, *_ in outcomes if image.worker == worker])
                            .claimed_by(worker).select_for_update().values_list("pk", flat=True))
            done = [(image, labels, thumbnail) for image, labels, thumbnail, code, _ in outcomes
                    if not code and image.pk in mine]
            failed = {}
            for image, _, _, code, reason in outcomes:
                if code and image.pk in mine:
                    failed.setdefault((code, reason[:1000]), []).append(image)
            for (code, reason), images in failed.items():
                self.filter(pk__in=[image.pk for image in images]).update(
                    status=Image.Status.FAILED, error_code=code, error=reason, finished_at=now, **found(images))
            if done:
                images = [image for image, _, _ in done]
                self.filter(pk__in=[image.pk for image in images]).update(
                    status=Image.Status.DONE, error="", error_code="", finished_at=now, model_name=model_name,
                    thumbnail=each("thumbnail", images, [thumbnail or "" for _, _, thumbnail in done]), **found(images))
            Prediction.objects.bulk_create(
                Prediction(image=image, rank=rank, class_index=label.index, wnid=label.wnid, label=label.label,
                           score=label.score, **categories(label.index))
                for image, labels, _ in done for rank, label in enumerate(labels, start=1)
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
        self.bulk_update([image for image, _ in reused], ["status", "reused_from", "thumbnail", "model_name",
                                                         "started_at", "finished_at"])
        Prediction.objects.bulk_create(
            Prediction(image=image, rank=p.rank, class_index=p.class_index, wnid=p.wnid, label=p.label, score=p.score,
                       parents=p.parents, search_text=p.search_text)
            for image, source in reused for p in source.predictions.all()
        )
        return {image.pk for image, _ in reused}

    def usage(self, since):
        """For upload quotas, in one query: open images (queued or processing), images queued
        since `since` and the earliest such time, and the bytes of the originals stored."""
        recent = Q(queued_at__gte=since)
        return self.aggregate(
            open=Count("pk", filter=Q(status__in=[Image.Status.QUEUED, Image.Status.PROCESSING])),
            recent=Count("pk", filter=recent), oldest_recent=Min("queued_at", filter=recent),
            stored=Coalesce(Sum("size"), 0),
        )

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

    def failed_or_lost_ids(self, now):
        """For operators: the failed images among these, and the lost ones."""
        lost = Image.objects.lost(now).values("pk")
        return list(self.filter(Q(status=Image.Status.FAILED) | Q(pk__in=lost)).values_list("pk", flat=True))

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
    sent_at = models.DateTimeField(null=True, blank=True,
                                   help_text="When its message was sent to SQS; empty while it waits in the outbox.")
    message = models.UUIDField(null=True, blank=True, help_text="The SQS message that carries it, once sent.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it.")
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until when the claiming worker holds it; extended while it works.")
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
            models.Index(fields=["status", "sent_at", "owner"], name="image_outbox_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="image_lease_idx"),
            models.Index(fields=["message"], name="image_message_idx"),
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

    def timings(self):
        """Seconds waiting in the queue, in a worker, and in all; None where not reached yet."""
        def seconds(start, end):
            return round((end - start).total_seconds(), 3) if start and end else None

        return {"queued": seconds(self.queued_at, self.started_at),
                "processing": seconds(self.started_at, self.finished_at),
                "total": round(self.latency.total_seconds(), 3) if self.latency else None}

    @property
    def thumbnail_url(self):
        """A presigned URL of the worker's thumbnail (a JPEG it encoded, shown inline), or "" before there is one."""
        return default_storage.signed_url(self.thumbnail.name, "image/jpeg") if self.thumbnail else ""

    @property
    def original_url(self):
        """A presigned URL of the upload, served as the detected type and as a download, never as a page."""
        return default_storage.signed_url(self.file.name, self.content_type or "application/octet-stream",
                                          download_name=self.download_name)

    @property
    def download_name(self):
        """The uploaded name with the detected format's extension: pwn.html holding a GIF downloads as pwn.gif."""
        return (PurePosixPath(self.original_name).stem or "image") + EXTENSIONS.get(self.content_type, "")

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


def each(field, images, values):
    """An expression giving each of `images` its own value of `field`, for one UPDATE of them all
    (cast to the field where the database needs it, as `bulk_update` does: PostgreSQL
    types a CASE of NULLs as text)."""
    output = Image._meta.get_field(field)
    case = Case(*[When(pk=image.pk, then=Value(value, output_field=output)) for image, value in zip(images, values)],
                output_field=output)
    return Cast(case, output_field=output) if connection.features.requires_casted_case_in_updates else case


def found(images):
    """What the worker found reading the originals (for one uploaded straight to S3: its type, size
    and digest; for the others what the upload recorded), as UPDATE values for all of them."""
    return {field: each(field, images, [getattr(image, field) for image in images])
            for field in ("content_type", "width", "height", "sha256")}
