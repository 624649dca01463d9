"""The REST API under /api/v1/: Django REST Framework views, documented by drf-spectacular.

Class-based views here (unlike the pages) because DRF's generics carry the pagination,
filters and serializers that drf-spectacular reads to build the OpenAPI schema.
"""
from django.conf import settings
from django.core.paginator import EmptyPage, Paginator
from django.db.models import prefetch_related_objects
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import serializers, tasks
from classifier.api_conventions import Pagination, PayloadTooLarge, UploadsThrottled, upload_wait
from classifier.direct_uploads import Declared, NotCommitted, commit_upload, start_upload
from classifier.limits import STATUS, UploadBudget, retryable
from classifier.models import BATCH_FULL, Batch, Image
from classifier.upload import accept_uploads, oversized_body

MAX_ID = 2**63 - 1


def refuse_large_body(request):
    """Refuse before reading when Content-Length is over the limit."""
    if length := oversized_body(request):
        raise PayloadTooLarge(
            f"The request is too large: {length:,} bytes (limit {settings.MAX_REQUEST_BYTES:,}). "
            "Send the files in several requests."
        )


class OverLimit(exceptions.APIException):
    """A quota or request limit that refuses the whole upload: 413 or 429, with its code."""

    def __init__(self, limit):
        super().__init__({"detail": str(limit), "error_code": limit.code})
        self.status_code, self.wait = limit.status, limit.retry_after


def upload_budget(request):
    """The request's UploadBudget, or OverLimit if the user can upload nothing now."""
    budget = UploadBudget(request.user)
    if limit := budget.problem():
        raise OverLimit(limit)
    return budget


def batch_or_not_found(request, pk):
    """The user's batch `pk`, or the API's JSON 404."""
    if not 0 < pk <= MAX_ID or not (batch := Batch.objects.filter(pk=pk, owner=request.user).first()):
        raise exceptions.NotFound(f"No batch {pk} among your batches.")
    return batch


def room_in(batch):
    """`batch`, or PayloadTooLarge when it is full."""
    if not batch.room():
        code, reason = BATCH_FULL
        raise PayloadTooLarge(reason.format(limit=settings.MAX_BATCH_IMAGES), code=code)
    return batch


def nothing_accepted(refused, refusal_serializer=serializers.RefusalSerializer,
                     none="Attach files in the field 'images'."):
    """When no file could be accepted: 413 if every file broke a size limit, 429 if one broke a
    limit over time, else 400; `none` says what to do when no file was sent."""
    data = {"refused": refusal_serializer(refused, many=True).data}
    statuses = {STATUS.get(refusal.code, 400) for refusal in refused}
    if statuses == {413}:
        return Response({"detail": "Every file is over a size limit: see refused.", **data}, status=413)
    if 429 in statuses:
        return Response({"detail": "You have reached a limit: see refused.", **data}, status=429)
    detail = "No image was accepted: see refused." if refused else none
    return Response({"detail": detail, **data}, status=400)


def upload_response(request, result):
    """201 with the accepted and refused files, or nothing_accepted()."""
    if not result.accepted:
        return nothing_accepted(result.refused)
    data = serializers.UploadResultSerializer(result, context={"request": request}).data
    return Response(data, status=status.HTTP_201_CREATED)


ERRORS = {
    400: OpenApiResponse(serializers.ErrorSerializer, "Invalid input."),
    401: OpenApiResponse(serializers.ErrorSerializer, "No valid token."),
    404: OpenApiResponse(serializers.ErrorSerializer, "Not found among your objects."),
    429: OpenApiResponse(serializers.ErrorSerializer, "Too many requests; retry after Retry-After seconds."),
}
UPLOAD_LIMITS = OpenApiResponse(serializers.UploadErrorSerializer, "Too many uploads, or a quota over time reached "
                                "(error_code quota_open_images or quota_images_per_day); retry after Retry-After "
                                "seconds.")
COMMON = {401: ERRORS[401], 429: ERRORS[429]}
LIST_ERRORS = {400: ERRORS[400], 404: OpenApiResponse(serializers.ErrorSerializer, "No such page."), **COMMON}
UPLOAD_DOC = dict(
    request={"multipart/form-data": serializers.UploadRequestSerializer},
    responses={
        201: serializers.UploadResultSerializer,
        400: OpenApiResponse(serializers.UploadErrorSerializer, "No file was accepted; see refused."),
        413: OpenApiResponse(serializers.UploadErrorSerializer, "The request, or every file, is too large, or your "
                                                                "storage is full (error_code quota_bytes_stored)."),
        415: OpenApiResponse(serializers.ErrorSerializer, "The body is not multipart/form-data."),
        **COMMON,
        429: UPLOAD_LIMITS,
    },
)


class UploadThrottleMixin:
    def check_throttles(self, request):
        """Uploads are throttled on their own as well (UPLOAD_RATE_LIMIT, shared with the form)."""
        if request.method == "POST" and (wait := upload_wait(request)):
            raise UploadsThrottled(wait)
        super().check_throttles(request)


class LargeUploadMixin(UploadThrottleMixin):
    parser_classes = [MultiPartParser]

    def initial(self, request, *args, **kwargs):
        refuse_large_body(request)
        super().initial(request, *args, **kwargs)


class BatchList(LargeUploadMixin, generics.ListAPIView):
    serializer_class = serializers.BatchSummarySerializer

    def get_queryset(self):
        return Batch.objects.owned_by(self.request.user).with_counts().order_by("-created_at", "-id")

    @extend_schema(summary="List your batches, newest first", responses={200: serializers.BatchSummarySerializer,
                                                                        **LIST_ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(summary="Upload images into a new batch", **UPLOAD_DOC)
    def post(self, request):
        budget = upload_budget(request)
        return upload_response(request, accept_uploads(request.user, request.FILES.getlist("images"), budget=budget))


class BatchImages(LargeUploadMixin, APIView):
    @extend_schema(summary="Upload more images into one of your batches", request=UPLOAD_DOC["request"],
                   responses={**UPLOAD_DOC["responses"], 404: ERRORS[404],
                              413: OpenApiResponse(serializers.UploadErrorSerializer,
                                                   "The request or every file is too large, or the batch is full "
                                                   "(MAX_BATCH_IMAGES).")})
    def post(self, request, pk):
        batch = room_in(batch_or_not_found(request, pk))
        budget = upload_budget(request)
        files = request.FILES.getlist("images")
        return upload_response(request, accept_uploads(request.user, files, batch=batch, budget=budget))


START_DOC = dict(
    request=serializers.UploadStartRequestSerializer,
    responses={
        201: serializers.UploadStartSerializer,
        400: OpenApiResponse(serializers.DirectUploadErrorSerializer, "No file was admitted (see refused), or the "
                                                                      "request is invalid."),
        413: OpenApiResponse(serializers.DirectUploadErrorSerializer, "Every file is too large, your storage is full "
                                                                      "(quota_bytes_stored), or the batch is full."),
        **COMMON,
        429: UPLOAD_LIMITS,
    },
)
START_DESCRIPTION = ("Declare the files (name and exact size); each one admitted gets a "
                     "key and a presigned POST straight to storage, for exactly that size. POST each file there "
                     "(multipart/form-data: the fields as given, then the file in a field named 'file'), then "
                     "commit the keys that arrived. The request's budget and your quotas are charged with the "
                     "declared sizes now, and again with the stored ones at the commit. Images are checked once "
                     "stored: a file that is not one fails with the same error_code and error as an upload "
                     "through POST /batches would be refused with.")


class NewBatchUploads(UploadThrottleMixin, APIView):
    @extend_schema(summary="Start an upload straight to storage, into a new batch", description=START_DESCRIPTION,
                   operation_id="batches_uploads_start", **START_DOC)
    def post(self, request, pk=None):
        batch = room_in(batch_or_not_found(request, pk)) if pk is not None else None
        body = serializers.UploadStartRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        files = [Declared(index, file["name"], file["size"])
                 for index, file in enumerate(body.validated_data["files"])]
        started = start_upload(request.user, files, batch=batch, budget=upload_budget(request))
        if not started.slots:
            return nothing_accepted(started.refused, serializers.DirectRefusalSerializer)
        data = serializers.UploadStartSerializer(started, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class BatchUploads(NewBatchUploads):
    @extend_schema(summary="Start an upload straight to storage, into one of your batches",
                   operation_id="batch_uploads_start", description=START_DESCRIPTION, request=START_DOC["request"],
                   responses={**START_DOC["responses"], 404: ERRORS[404]})
    def post(self, request, pk):
        return super().post(request, pk)


class BatchCommit(APIView):
    @extend_schema(summary="Commit an upload straight to storage: record and queue the files that arrived",
                   description="Each key must be one the upload's start gave, stored with exactly its declared size "
                               "(else it is refused, and a file of the wrong size deleted); quotas are charged with "
                               "the stored sizes. Committing a key again lists it as accepted again.",
                   request=serializers.CommitRequestSerializer,
                   responses={201: serializers.CommitResultSerializer,
                              400: OpenApiResponse(serializers.DirectUploadErrorSerializer,
                                                   "No file was accepted (see refused), the request is invalid, or "
                                                   "the upload is unknown or expired (error_code upload_expired)."),
                              404: ERRORS[404],
                              409: OpenApiResponse(serializers.UploadErrorSerializer,
                                                   "Another request is committing this upload (commit_conflict)."),
                              413: OpenApiResponse(serializers.DirectUploadErrorSerializer,
                                                   "Every file is over a size limit or your storage quota."),
                              **COMMON,
                              429: OpenApiResponse(serializers.DirectUploadErrorSerializer,
                                                   "A quota over time refused the files (see refused)."),
                              })
    def post(self, request, pk):
        batch = batch_or_not_found(request, pk)
        body = serializers.CommitRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            result = commit_upload(request.user, batch, body.validated_data["upload"], body.validated_data["keys"])
        except NotCommitted as problem:
            return Response({"detail": str(problem), "error_code": problem.code},
                            status=409 if problem.code == "commit_conflict" else 400)
        if not result.accepted:
            return nothing_accepted(result.refused, serializers.DirectRefusalSerializer)
        data = serializers.CommitResultSerializer(result, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class BatchDetail(APIView):
    pagination_class = Pagination

    @extend_schema(summary="A batch: counts per status, and a page of its images in upload order",
                   parameters=[
                       OpenApiParameter("page", {"type": "integer", "minimum": 1},
                                        description="A page of the batch's images, in upload order."),
                       OpenApiParameter("page_size", {"type": "integer", "minimum": 1,
                                                      "maximum": Pagination.max_page_size},
                                        description=f"Images per page (default {Pagination.page_size})."),
                   ],
                   responses={200: serializers.BatchSerializer, **LIST_ERRORS})
    def get(self, request, pk):
        batch = batch_or_not_found(request, pk)
        pages = self.pagination_class()
        images = batch.images.with_top_prediction().order_by("id")
        number = pages.get_page_number(request, None)
        try:
            page = Paginator(images, pages.get_page_size(request)).page(number)
        except EmptyPage:
            raise exceptions.NotFound(f"Page {number} does not exist: the batch has fewer images.") from None
        return Response(serializers.BatchSerializer(batch, context={"request": request, "images": page}).data)

    @extend_schema(summary="Delete a batch, its images and their stored files",
                   responses={204: None, 404: ERRORS[404], **COMMON})
    def delete(self, request, pk):
        batch_or_not_found(request, pk).delete_with_files()
        return Response(status=status.HTTP_204_NO_CONTENT)


class BatchRetry(UploadThrottleMixin, APIView):
    @extend_schema(summary="Queue the failed images of a batch again", request=None,
                   responses={200: serializers.RetryResultSerializer, 404: ERRORS[404], **COMMON})
    def post(self, request, pk):
        ids, held_back = retryable(batch_or_not_found(request, pk))
        return Response({"requeued": tasks.requeue(ids), "held_back": held_back})


IMAGE_FILTERS = [
    OpenApiParameter("status", str, enum=Image.Status.values, description="Only images in this status."),
    OpenApiParameter("label", str, description="Only images with these words in any of their five labels or those "
                                               "labels' broader categories, best match first: e.g. cat, tabby."),
    OpenApiParameter("batch", {"type": "integer", "minimum": 1}, description="Only images of this batch."),
]


class ImageList(generics.ListAPIView):
    serializer_class = serializers.ImageSummarySerializer

    def get_queryset(self):
        images = Image.objects.owned_by(self.request.user).with_top_prediction().order_by("-id")
        params = self.request.query_params
        if "status" in params:
            if params["status"] not in Image.Status.values:
                raise exceptions.ValidationError({"status": [f"Use one of {', '.join(Image.Status.values)}."]})
            images = images.filter(status=params["status"])
        if params.get("label"):
            images = images.search_label(params["label"])
        if "batch" in params:
            if not (params["batch"].isascii() and params["batch"].isdigit()) or int(params["batch"]) < 1:
                raise exceptions.ValidationError({"batch": ["Use a batch id, e.g. 12."]})
            images = images.filter(batch_id=min(int(params["batch"]), MAX_ID))
        return images

    @extend_schema(summary="Your images, newest first, filtered", parameters=IMAGE_FILTERS,
                   responses={200: serializers.ImageSummarySerializer, **LIST_ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def image_or_not_found(request, uuid):
    """The user's image `uuid`, or the API's JSON 404."""
    image = Image.objects.owned_by(request.user).filter(uuid=uuid).first()
    if image is None:
        raise exceptions.NotFound(f"No image {uuid} among your images.")
    return image


ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The image's id.")


class ImageDetail(APIView):
    @extend_schema(summary="An image: status, error, predictions, timing and presigned URLs", parameters=[ID],
                   responses={200: serializers.ImageSerializer, 404: ERRORS[404], **COMMON})
    def get(self, request, id):
        image = image_or_not_found(request, id)
        prefetch_related_objects([image], "predictions")
        return Response(serializers.ImageSerializer(image, context={"request": request}).data)

    @extend_schema(summary="Delete an image and its stored files", parameters=[ID],
                   responses={204: None, 404: ERRORS[404], **COMMON})
    def delete(self, request, id):
        image_or_not_found(request, id).delete_with_files()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageUrls(APIView):
    @extend_schema(summary="Fresh presigned URLs of an image's original and thumbnail", parameters=[ID],
                   responses={200: serializers.ImageUrlsSerializer, 404: ERRORS[404], **COMMON})
    def get(self, request, id):
        image = image_or_not_found(request, id)
        return Response({"file_url": image.original_url, "thumbnail_url": image.thumbnail_url or None,
                         "expires_in": settings.PRESIGNED_URL_EXPIRY})


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def no_such_endpoint(request):
    raise exceptions.NotFound(f"No API endpoint at {request.path}: see {reverse('classifier:api:docs')}.")
