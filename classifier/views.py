"""The gallery's views: upload, batches, one batch with live status, search, and the actions."""
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from classifier import tasks
from classifier.api_conventions import upload_wait
from classifier.limits import UploadBudget, retryable
from classifier.models import Batch, Image
from classifier.upload import accept_uploads, oversized_body

# Status polls ask for images changed since their last poll, minus this much for clock skew
# between the web and worker machines; a card updated twice is harmless, a missed one is not.
CLOCK_SKEW = timedelta(seconds=30)
# Originals a browser shows in an <img>; others (TIFF) show their thumbnail and a link.
BROWSER_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"}


def upload_limits():
    """What the uploader checks in the browser before sending; the server checks again."""
    return {
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_archive_bytes": settings.MAX_ARCHIVE_BYTES,
        "request_files": settings.UPLOAD_REQUEST_FILES,
        "request_bytes": settings.UPLOAD_REQUEST_BYTES,
    }


@login_required
def batches(request):
    """The uploader and the user's batches, newest first."""
    batches = Batch.objects.owned_by(request.user).with_counts().order_by("-created_at", "-id")
    page = Paginator(batches, 20).get_page(request.GET.get("page"))
    return render(request, "classifier/batches.html", {"page": page, "limits": upload_limits()})


@login_required
@require_POST
def upload(request):
    """The form upload, for browsers without JavaScript; the uploader script uses the API."""
    if length := oversized_body(request):
        messages.error(request, f"The upload is too large ({length:,} bytes): choose fewer files at a time.")
        return redirect("classifier:batches")
    if too_many_uploads(request):
        return redirect("classifier:batches")
    budget = UploadBudget(request.user)
    if limit := budget.problem():
        messages.error(request, str(limit))
        return redirect("classifier:batches")
    result = accept_uploads(request.user, request.FILES.getlist("files"), budget=budget)
    for refusal in result.refused:
        messages.error(request, f"{refusal.name}: {refusal.reason}")
    if result.batch is None:
        if not result.refused:
            messages.error(request, "Choose at least one image to upload.")
        return redirect("classifier:batches")
    queued = len(result.accepted) - result.reused
    reused = f"; {result.reused} already classified, result reused" if result.reused else ""
    messages.success(request, f"{queued} image(s) queued for classification{reused}.")
    return redirect("classifier:batch", result.batch.pk)


def batch_or_404(request, pk):
    """The user's batch `pk`, or the 404 page."""
    return get_object_or_404(Batch.objects.owned_by(request.user), pk=pk)


# A batch's orders: (what the menu says, the ordering). Unclassified images go last.
SORTS = {
    "upload": ("Upload order", ["id"]),
    "latest": ("Latest first", ["-id"]),
    "name": ("Name", [Lower("original_name"), "id"]),
    "label": ("Label", [F("top_label").asc(nulls_last=True), "id"]),
    "confident": ("Most confident first", [F("top_score").desc(nulls_last=True), "id"]),
    "unsure": ("Least confident first", [F("top_score").asc(nulls_last=True), "id"]),
}


@dataclass(frozen=True)
class BatchView:
    """Which page of a batch is on screen: a status filter, an order and a page number. The page
    and its status polls read only that page's images, whatever the batch's size."""

    status: str = ""
    sort: str = "upload"
    page: str = "1"

    @classmethod
    def from_query(cls, query):
        status, sort = query.get("status", ""), query.get("sort", "upload")
        return cls(status if status in Image.Status.values else "", sort if sort in SORTS else "upload",
                   query.get("page", "1"))

    def page_of(self, batch):
        images = batch.images.all()
        if self.status:
            images = images.filter(status=self.status)
        if self.sort in ("label", "confident", "unsure"):
            images = images.with_top_prediction()
        return Paginator(images.order_by(*SORTS[self.sort][1]), settings.BATCH_PAGE_SIZE).get_page(self.page)

    def query_string(self, **changes):
        """This view's query string with `changes`, leaving out the defaults."""
        values = {"status": self.status, "sort": self.sort, "page": self.page, **changes}
        return urlencode({key: value for key, value in values.items()
                          if value and (key, str(value)) not in (("sort", "upload"), ("page", "1"))})


@login_required
def batch(request, pk):
    """One page of a batch's cards (filtered, sorted), kept live by batch.js."""
    batch = batch_or_404(request, pk)
    view = BatchView.from_query(request.GET)
    page = view.page_of(batch)
    counts = batch.status_counts()
    filters = [("", "All", counts["total"])] + [(value, title, counts[value]) for value, title in Image.Status.choices]
    pages = {"first": 1, "previous": page.number - 1, "next": page.number + 1, "last": page.paginator.num_pages}
    return render(request, "classifier/batch.html", {
        "batch": batch, "page": page, "images": page.object_list.prefetch_related("predictions"), "counts": counts,
        "view": view, "view_query": view.query_string(page=""),
        "sorts": [(key, title) for key, (title, _) in SORTS.items()],
        "filters": [(value, title, count, view.query_string(status=value, page="")) for value, title, count in filters],
        "pages": {name: view.query_string(page=number) for name, number in pages.items()},
        "rendered_at": timezone.now().isoformat(), "page_url": f"{request.path}?{view.query_string(page=page.number)}",
    })


def image_state(image, request, page_url):
    """What a card shows, as JSON, with the card's HTML for a page that does not have it yet."""
    predictions = list(image.predictions.all())
    thumbnail_url = image.thumbnail_url  # presigned once, for the JSON and the card
    return {
        "id": str(image.uuid),
        "status": image.status,
        "status_display": image.get_status_display(),
        "error": image.error,
        "predictions": [{"label": p.label, "score": round(p.score, 4), "low_confidence": p.is_low_confidence}
                        for p in predictions],
        "thumbnail": thumbnail_url,
        "html": render_to_string("classifier/_image_card.html", {
            "image": image, "next_url": page_url, "thumbnail_url": thumbnail_url}, request),
    }


def uuids_in(text, limit=100):
    """The well-formed UUIDs in a comma-separated list, at most `limit`."""
    found = []
    for part in text.split(",")[:limit]:
        try:
            found.append(uuid.UUID(part.strip()))
        except ValueError:
            continue
    return found


def changed_since(images, since):
    """Images queued, claimed or finished after `since` (None: all of them)."""
    if since is None:
        return images
    try:
        since -= CLOCK_SKEW
    except OverflowError:  # a moment in year 1: everything is newer
        return images
    return images.filter(Q(queued_at__gte=since) | Q(started_at__gte=since) | Q(finished_at__gte=since))


def parse_since(text):
    try:
        since = parse_datetime(text)
    except ValueError:
        return None
    if since and timezone.is_naive(since):
        since = timezone.make_aware(since, UTC)
    return since


@login_required
@require_GET
def batch_status(request, pk):
    """The batch's counts; the ids, in order, of the page on screen (its filter, sort and page);
    and that page's images changed since the `since` timestamp of the previous answer, which
    includes images added since. Or, with `ids` (comma-separated), only those images: cards the
    page lacks, or whose thumbnail links expired. Never more than a page of images."""
    batch = batch_or_404(request, pk)
    now = timezone.now()
    counts = batch.status_counts()
    view = BatchView.from_query(request.GET)
    page_url = reverse("classifier:batch", args=[batch.pk]) + "?" + view.query_string()
    data = {"now": now.isoformat(), "counts": counts, "finished": counts["queued"] + counts["processing"] == 0}
    if "ids" in request.GET:
        images = batch.images.filter(uuid__in=uuids_in(request.GET["ids"]))
    else:
        page = view.page_of(batch)
        shown = list(page.object_list.values_list("pk", "uuid"))
        data["page"] = {"number": page.number, "pages": page.paginator.num_pages, "count": page.paginator.count,
                        "ids": [str(image_uuid) for _, image_uuid in shown]}
        images = changed_since(batch.images.filter(pk__in=[pk for pk, _ in shown]),
                               parse_since(request.GET.get("since", "")))
    images = images.order_by("id").prefetch_related("predictions")
    return JsonResponse({**data, "images": [image_state(image, request, page_url) for image in images]})


@login_required
def image(request, uuid):
    """One image: the original (a presigned link), the top 5 with their categories, the timings."""
    image = get_object_or_404(
        Image.objects.owned_by(request.user).select_related("reused_from").prefetch_related("predictions"), uuid=uuid)
    neighbours = Image.objects.filter(batch_id=image.batch_id).values_list("uuid", flat=True)
    shows_inline = image.content_type in BROWSER_IMAGE_TYPES
    return render(request, "classifier/image.html", {
        "image": image, "predictions": list(image.predictions.all()), "timings": image.timings(),
        # Shown in the page as its detected type (one a browser shows as a picture); the link downloads
        # it, as the API's URL does.
        "shown_url": default_storage.signed_url(image.file.name, image.content_type) if shows_inline else "",
        "original_url": image.original_url, "shows_inline": shows_inline,
        "previous": neighbours.filter(id__lt=image.id).order_by("-id").first(),
        "next": neighbours.filter(id__gt=image.id).order_by("id").first(),
        "link_minutes": max(1, settings.PRESIGNED_URL_EXPIRY // 60),
    })


@login_required
def images(request):
    """All the user's images, filtered by status and searched by label or category, best match first."""
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()
    images = Image.objects.owned_by(request.user).order_by("-id").prefetch_related("predictions")
    if status in Image.Status.values:
        images = images.filter(status=status)
    if query:
        images = images.search_label(query)
    page = Paginator(images, 48).get_page(request.GET.get("page"))
    filters = urlencode({key: value for key, value in (("q", query), ("status", status)) if value})
    return render(request, "classifier/images.html", {
        "page": page, "status": status, "query": query, "statuses": Image.Status.choices, "filters": filters,
    })


def next_or(request, fallback, *args):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args)


@login_required
@require_POST
def delete_image(request, uuid):
    image = get_object_or_404(Image, uuid=uuid, owner=request.user)
    batch_pk, name = image.batch_id, image.original_name
    image.delete_with_files()
    messages.success(request, f"Deleted {name}.")
    return next_or(request, "classifier:batch", batch_pk)


@login_required
@require_POST
def delete_batch(request, pk):
    batch = batch_or_404(request, pk)
    batch.delete_with_files()
    messages.success(request, f"Deleted batch {pk} and its images.")
    return redirect("classifier:batches")


def too_many_uploads(request):
    """True, with a message saying how long to wait, when the user's uploads (and retries) are
    over UPLOAD_RATE_LIMIT."""
    if wait := upload_wait(request):
        messages.error(request, f"Too many uploads (limit {settings.UPLOAD_RATE_LIMIT} per user): try again in "
                                f"{wait} s.")
        return True
    return False


@login_required
@require_POST
def retry_batch(request, pk):
    batch = batch_or_404(request, pk)
    if too_many_uploads(request):
        return redirect("classifier:batch", pk)
    ids, held_back = retryable(batch)
    count = tasks.requeue(ids)
    messages.success(request, f"{count} failed image(s) queued again." if count else "No failed images to retry.")
    if held_back:
        messages.warning(request, f"{held_back} more wait for your quota of open images "
                                  f"({settings.QUOTA_OPEN_IMAGES:,}): retry again once some have finished.")
    return redirect("classifier:batch", pk)
