"""API representations of batches, images and predictions; the OpenAPI schema is built from these."""
from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.models import Batch, Image, Prediction


def absolute(request, name, *args):
    return request.build_absolute_uri(reverse(name, args=args))


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, and what to do about it.")
    errors = serializers.DictField(required=False, help_text="Per-field problems, for invalid input.")


class PredictionSerializer(serializers.ModelSerializer):
    index = serializers.IntegerField(source="class_index", help_text="ImageNet-1k class index, 0–999.")
    parents = serializers.ListField(child=serializers.CharField(), read_only=True,
                                    help_text="Broader categories of the label (WordNet), nearest first, "
                                              "e.g. domestic cat, cat, feline.")
    low_confidence = serializers.BooleanField(
        source="is_low_confidence", read_only=True,
        help_text=f"True when the score is below LOW_CONFIDENCE_BELOW ({settings.LOW_CONFIDENCE_BELOW}): a guess.")

    class Meta:
        model = Prediction
        fields = ["rank", "label", "index", "wnid", "score", "low_confidence", "parents"]


class CountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    processing = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    total = serializers.IntegerField()


class TimingSerializer(serializers.Serializer):
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    queue_seconds = serializers.FloatField(allow_null=True, help_text="Queued → claimed by a worker.")
    processing_seconds = serializers.FloatField(allow_null=True, help_text="Claimed → finished.")
    total_seconds = serializers.FloatField(allow_null=True, help_text="Queued → finished.")


class ImageSummarySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    name = serializers.CharField(source="original_name", help_text="The uploaded filename, for display.")
    batch = serializers.IntegerField(source="batch_id")
    label = serializers.SerializerMethodField(help_text="The top label, once done.")
    score = serializers.SerializerMethodField(help_text="The top label's probability, 0–1, once done.")
    low_confidence = serializers.SerializerMethodField(
        help_text=f"True when the top label's score is below LOW_CONFIDENCE_BELOW ({settings.LOW_CONFIDENCE_BELOW}).")
    url = serializers.SerializerMethodField(help_text="This image in the API.")
    thumbnail_url = serializers.SerializerMethodField(
        help_text=f"A presigned URL of the thumbnail, valid {settings.PRESIGNED_URL_EXPIRY} s; null until done."
    )

    class Meta:
        model = Image
        fields = ["id", "name", "status", "error_code", "error", "batch", "label", "score", "low_confidence", "url",
                  "thumbnail_url"]

    def top(self, image):
        if hasattr(image, "top_label"):
            return (image.top_label, image.top_score) if image.top_label is not None else None
        prediction = image.top_prediction
        return (prediction.label, prediction.score) if prediction else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_label(self, image):
        top = self.top(image)
        return top[0] if top else None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_score(self, image):
        top = self.top(image)
        return top[1] if top else None

    @extend_schema_field(serializers.BooleanField(allow_null=True))
    def get_low_confidence(self, image):
        top = self.top(image)
        return top[1] < settings.LOW_CONFIDENCE_BELOW if top else None

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, image):
        return absolute(self.context["request"], "classifier:api:image", image.uuid)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_thumbnail_url(self, image):
        return image.thumbnail_url or None


class ImageSerializer(ImageSummarySerializer):
    predictions = PredictionSerializer(many=True, read_only=True, help_text="The top-k labels, best first.")
    model = serializers.CharField(source="model_name", help_text="The model that classified it.")
    timing = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField(
        help_text=f"A presigned URL of the original upload, valid {settings.PRESIGNED_URL_EXPIRY} s."
    )
    reused_from = serializers.SlugRelatedField(
        slug_field="uuid", read_only=True, allow_null=True,
        help_text="When set, this image was not classified again: it is the same bytes as the owner's "
                  "earlier image with this id, and carries that image's result.",
    )

    class Meta:
        model = Image
        fields = ImageSummarySerializer.Meta.fields + [
            "predictions", "model", "attempts", "timing", "content_type", "size", "width", "height",
            "sha256", "file_url", "reused_from",
        ]

    @extend_schema_field(TimingSerializer)
    def get_timing(self, image):
        seconds = image.timings()
        return {
            "queued_at": image.queued_at, "started_at": image.started_at, "finished_at": image.finished_at,
            "queue_seconds": seconds["queued"], "processing_seconds": seconds["processing"],
            "total_seconds": seconds["total"],
        }

    @extend_schema_field(OpenApiTypes.URI)
    def get_file_url(self, image):
        return image.original_url


class ImageUrlsSerializer(serializers.Serializer):
    file_url = serializers.URLField(help_text="Presigned URL of the original upload.")
    thumbnail_url = serializers.URLField(allow_null=True, help_text="Presigned URL of the thumbnail, if made.")
    expires_in = serializers.IntegerField(help_text="Seconds the URLs stay valid.")


class BatchSummarySerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This batch in the API.")
    counts = serializers.SerializerMethodField(help_text="Images per status.")

    class Meta:
        model = Batch
        fields = ["id", "created_at", "url", "counts"]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, batch):
        return absolute(self.context["request"], "classifier:api:batch", batch.pk)

    @extend_schema_field(CountsSerializer)
    def get_counts(self, batch):
        if hasattr(batch, "image_count"):
            counts = {status: getattr(batch, f"{status}_count") for status in Image.Status.values}
            return {**counts, "total": batch.image_count}
        return batch.status_counts()


class BatchSerializer(BatchSummarySerializer):
    """A batch with one page of its images (context["images"]: a Page), in upload order."""

    images = serializers.SerializerMethodField(help_text="One page of the batch's images, in upload order "
                                                         "(?page=, ?page_size=).")
    images_count = serializers.SerializerMethodField(help_text="How many images the batch holds.")
    next = serializers.SerializerMethodField(help_text="The next page of images, or null.")
    previous = serializers.SerializerMethodField(help_text="The previous page of images, or null.")

    class Meta:
        model = Batch
        fields = BatchSummarySerializer.Meta.fields + ["images_count", "next", "previous", "images"]

    @extend_schema_field(ImageSummarySerializer(many=True))
    def get_images(self, batch):
        return ImageSummarySerializer(self.context["images"], many=True, context=self.context).data

    def get_images_count(self, batch) -> int:
        return self.context["images"].paginator.count

    def page_url(self, batch, page):
        request = self.context["request"]
        query = request.GET.copy()
        query["page"] = page
        return request.build_absolute_uri(f"{reverse('classifier:api:batch', args=[batch.pk])}?{query.urlencode()}")

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_next(self, batch):
        page = self.context["images"]
        return self.page_url(batch, page.next_page_number()) if page.has_next() else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_previous(self, batch):
        page = self.context["images"]
        return self.page_url(batch, page.previous_page_number()) if page.has_previous() else None


class UploadRequestSerializer(serializers.Serializer):
    images = serializers.ListField(
        child=serializers.FileField(), min_length=1,
        help_text="Repeat the field once per file. Images (JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP, TIFF) or .zip "
                  f"archives of images; at most {settings.MAX_UPLOAD_BYTES:,} bytes per image.",
    )


class AcceptedImageSerializer(ImageSummarySerializer):
    class Meta:
        model = Image
        fields = ["id", "name", "status", "url"]


class RefusalSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The refused file's name.")
    error_code = serializers.CharField(source="code", help_text="Why it was refused, for programs: e.g. too_large, "
                                                                "empty, unsupported, not_an_image, truncated, "
                                                                "too_many_pixels, request_images, "
                                                                "quota_open_images.")
    error = serializers.CharField(source="reason", help_text="Why it was refused, for people.")


class UploadResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="batch.pk", help_text="The batch the images joined.")
    url = serializers.SerializerMethodField(help_text="The batch in the API.")
    images = AcceptedImageSerializer(source="accepted", many=True, help_text="The images accepted and queued.")
    refused = RefusalSerializer(many=True, help_text="The files refused at upload, each with its error.")

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, result):
        return absolute(self.context["request"], "classifier:api:batch", result.batch.pk)


class UploadErrorSerializer(ErrorSerializer):
    error_code = serializers.CharField(required=False, help_text="The limit that refused the whole request, e.g. "
                                                                 "quota_open_images.")
    refused = RefusalSerializer(many=True, required=False, help_text="The files refused, each with its error.")


class RetryResultSerializer(serializers.Serializer):
    requeued = serializers.IntegerField(help_text="How many failed images were queued again.")
    held_back = serializers.IntegerField(help_text="How many were not, for your quota of open images: retry "
                                                   "again once some have finished.")


# --- Uploads straight to storage (classifier.direct_uploads): start, POST each file to S3, commit. ---

class DeclaredFileSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=1024, allow_blank=True, trim_whitespace=False,
                                 help_text="The file's name, for display only.")
    size = serializers.IntegerField(min_value=0, max_value=2**63 - 1,
                                    help_text="Its exact size in bytes: its presigned POST accepts exactly this many "
                                              f"(at most {settings.MAX_UPLOAD_BYTES:,}).")


class UploadStartRequestSerializer(serializers.Serializer):
    files = serializers.ListField(child=DeclaredFileSerializer(), min_length=1,
                                  max_length=settings.MAX_FILES_PER_REQUEST,
                                  help_text="The files to upload, in the order their refusals and slots refer to "
                                            "(index). Images: JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP or TIFF; "
                                            "checked once stored, and failed with a reason if they are not.")


class PresignedPostSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Where to POST the file, as multipart/form-data.")
    fields = serializers.DictField(child=serializers.CharField(),
                                   help_text="Form fields to send first, as they are; then the file, in a field "
                                             "named 'file', last.")


class UploadSlotSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The file's position in the request's files.")
    name = serializers.CharField(help_text="The file's name, as it will be shown.")
    key = serializers.CharField(help_text="Its key in storage: name it in the commit once uploaded.")
    post = PresignedPostSerializer(help_text="The presigned POST that uploads it.")


class DirectRefusalSerializer(RefusalSerializer):
    index = serializers.IntegerField(allow_null=True, help_text="The file's position in the start's files; null for "
                                                                "a key the upload never gave.")
    key = serializers.CharField(allow_blank=True, help_text="The key the file was given, if it had one.")


class UploadStartSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="batch.pk", help_text="The batch the files will join.")
    url = serializers.SerializerMethodField(help_text="The batch in the API.")
    commit_url = serializers.SerializerMethodField(help_text="Where to commit the upload once the files are stored.")
    upload = serializers.CharField(source="token", help_text="Send it back with the commit.")
    expires_in = serializers.SerializerMethodField(help_text="Seconds the presigned POSTs stay valid; the commit is "
                                                             "accepted for twice as long.")
    files = UploadSlotSerializer(source="slots", many=True, help_text="The files admitted, each with its POST.")
    refused = DirectRefusalSerializer(many=True, help_text="The files refused, each with its error.")

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, started):
        return absolute(self.context["request"], "classifier:api:batch", started.batch.pk)

    @extend_schema_field(OpenApiTypes.URI)
    def get_commit_url(self, started):
        return absolute(self.context["request"], "classifier:api:batch-commit", started.batch.pk)

    def get_expires_in(self, started) -> int:
        return settings.PRESIGNED_UPLOAD_EXPIRY


class CommitRequestSerializer(serializers.Serializer):
    upload = serializers.CharField(help_text="The upload token its start gave.")
    keys = serializers.ListField(child=serializers.CharField(max_length=1024), min_length=1,
                                 max_length=settings.MAX_FILES_PER_REQUEST,
                                 help_text="The keys of the files that are now stored.")


class CommitResultSerializer(UploadResultSerializer):
    refused = DirectRefusalSerializer(many=True, help_text="The files refused at commit, each with its error.")


class DirectUploadErrorSerializer(UploadErrorSerializer):
    refused = DirectRefusalSerializer(many=True, required=False, help_text="The files refused, each with its error.")
