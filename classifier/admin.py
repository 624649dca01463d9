"""Admin for job inspection: read-only batches and images, with re-queue and fail actions."""
from django.contrib import admin
from django.db.models import Case, DurationField, Exists, ExpressionWrapper, F, Max, OuterRef, When
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from classifier import tasks
from classifier.models import FINAL_STATUSES, Batch, Image, Prediction, delete_with_files

OPERATOR_FAILED = ("operator", "Marked as failed by an operator.")


def thumbnail_tag(image, width=64):
    if not image.thumbnail:
        return "—"
    return format_html('<img src="{}" alt="Thumbnail of {}" width="{}">', image.thumbnail_url, image.original_name,
                       width)


def seconds(delta):
    return f"{delta.total_seconds():.1f} s" if delta is not None else "—"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that uploads and workers write: viewable and deletable, never edited by hand.

    Their actions (re-queue, fail, retry) change images' status: they need the change_image
    permission, so staff who may only view see no actions, and cannot post one either."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        return request.user.has_perm("classifier.change_image")


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    can_delete = False
    fields = readonly_fields = ["rank", "label", "score", "class_index", "wnid"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = ["thumbnail_preview", "original_name", "status", "owner", "top_label", "top_score", "worker",
                    "model_name", "latency", "queued_at"]
    list_display_links = ["original_name"]
    list_filter = ["status", ("model_name", admin.AllValuesFieldListFilter),
                   ("worker", admin.AllValuesFieldListFilter), ("reused_from", admin.EmptyFieldListFilter),
                   "queued_at", "finished_at"]
    list_select_related = ["owner"]
    search_fields = ["original_name", "predictions__label", "owner__username", "=sha256"]
    date_hierarchy = "queued_at"
    show_full_result_count = False
    inlines = [PredictionInline]
    actions = ["requeue", "mark_failed"]
    fieldsets = [
        (None, {"fields": ["thumbnail_large", "original_link", "original_name", "status", "error", "owner", "batch"]}),
        ("Processing", {"fields": ["worker", "model_name", "reused_from", "attempts", "requeues", "queued_at",
                                   "started_at", "finished_at", "latency"]}),
        ("File", {"fields": ["uuid", "content_type", "size", "width", "height", "sha256", "file", "thumbnail"]}),
    ]
    readonly_fields = ["thumbnail_large", "original_link", "latency"]

    def get_queryset(self, request):
        took = ExpressionWrapper(F("finished_at") - F("queued_at"), output_field=DurationField())
        return super().get_queryset(request).with_top_prediction().annotate(
            took=Case(When(status__in=FINAL_STATUSES, then=took), output_field=DurationField())
        )

    @admin.display(description="Thumbnail")
    def thumbnail_preview(self, image):
        return thumbnail_tag(image)

    @admin.display(description="Thumbnail")
    def thumbnail_large(self, image):
        return thumbnail_tag(image, width=256)

    @admin.display(description="Original")
    def original_link(self, image):
        return format_html('<a href="{}" rel="noopener" target="_blank">Download the original (presigned link)</a>',
                           image.original_url)

    @admin.display(description="Top label", ordering="top_label")
    def top_label(self, image):
        return image.top_label or "—"

    @admin.display(description="Score", ordering="top_score")
    def top_score(self, image):
        return f"{image.top_score:.1%}" if image.top_score is not None else "—"

    @admin.display(description="Queued → done", ordering="took")
    def latency(self, image):
        return seconds(image.took)

    @admin.action(description="Re-queue selected failed or lost images", permissions=["operate"])
    def requeue(self, request, queryset):
        selected = queryset.count()
        requeued = tasks.requeue(queryset.failed_or_lost_ids(timezone.now()))
        self.message_user(request, f"Re-queued {requeued} image(s); {selected - requeued} skipped "
                                   "(done, or waiting or processing for less than RESEND_AFTER_SECONDS).")

    @admin.action(description="Mark selected images as failed", permissions=["operate"])
    def mark_failed(self, request, queryset):
        failed = Image.objects.fail(list(queryset.values_list("pk", flat=True)), *OPERATOR_FAILED)
        self.message_user(request, f"Marked {failed} image(s) as failed; done and failed ones were left alone.")

    def delete_model(self, request, image):
        image.delete_with_files()

    def delete_queryset(self, request, queryset):
        delete_with_files(Image.objects.filter(pk__in=list(queryset.values_list("pk", flat=True))))


class BatchProgressFilter(admin.SimpleListFilter):
    title = "progress"
    parameter_name = "progress"

    def lookups(self, request, model_admin):
        return [("open", "In progress"), ("failed", "Has failed images"), ("finished", "Finished")]

    def queryset(self, request, queryset):
        images = Image.objects.filter(batch=OuterRef("pk"))
        open_images = Exists(images.exclude(status__in=FINAL_STATUSES))
        if self.value() == "open":
            return queryset.filter(open_images)
        if self.value() == "failed":
            return queryset.filter(Exists(images.filter(status=Image.Status.FAILED)))
        if self.value() == "finished":
            return queryset.filter(~open_images)
        return queryset


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "owner", "created_at", "progress", "image_count", "done", "failed", "latency"]
    list_filter = [BatchProgressFilter, "created_at"]
    list_select_related = ["owner"]
    search_fields = ["owner__username", "images__original_name"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["retry_failed"]
    fields = ["owner", "created_at", "progress", "image_count", "done", "failed", "latency"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).with_counts().annotate(last_finished=Max("images__finished_at"))

    @admin.display(description="Status")
    def progress(self, batch):
        if not batch.image_count:
            return "empty"
        open_images = batch.queued_count + batch.processing_count
        if open_images:
            return f"in progress ({open_images} open)"
        return "failed" if batch.failed_count == batch.image_count else "finished"

    @admin.display(description="Images", ordering="image_count")
    def image_count(self, batch):
        url = reverse("admin:classifier_image_changelist") + f"?batch__id__exact={batch.pk}"
        return format_html('<a href="{}">{} image{}</a>', url, batch.image_count, "" if batch.image_count == 1 else "s")

    @admin.display(description="Done", ordering="done_count")
    def done(self, batch):
        return batch.done_count

    @admin.display(description="Failed", ordering="failed_count")
    def failed(self, batch):
        return batch.failed_count

    @admin.display(description="Latency (created → last done)")
    def latency(self, batch):
        if batch.queued_count + batch.processing_count or not batch.last_finished:
            return "—"
        return seconds(batch.last_finished - batch.created_at)

    @admin.action(description="Retry the failed images of selected batches", permissions=["operate"])
    def retry_failed(self, request, queryset):
        requeued = tasks.requeue(Image.objects.filter(batch__in=queryset.values("pk")).failed_ids())
        self.message_user(request, f"Re-queued {requeued} failed image(s).")

    def delete_model(self, request, batch):
        batch.delete_with_files()

    def delete_queryset(self, request, queryset):
        batches = Batch.objects.filter(pk__in=list(queryset.values_list("pk", flat=True)))
        delete_with_files(Image.objects.filter(batch__in=batches), batches=batches)


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ["image", "rank", "label", "score"]
    list_filter = ["rank"]
    list_select_related = ["image"]
    search_fields = ["label", "wnid"]
