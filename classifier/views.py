"""The gallery's views: upload, batches, one batch with live status, search, and the actions."""
import uuid
from datetime import UTC, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from classifier import tasks
from classifier.api_conventions import upload_wait
from classifier.limits import UploadBudget
from classifier.models import Batch, Image
from classifier.upload import accept_uploads, oversized_body

# Status polls ask for images changed since their last poll, minus this much for clock skew
# between the web and worker machines; a card updated twice is harmless, a missed one is not.
CLOCK_SKEW = timedelta(seconds=30)


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
    if wait := upload_wait(request):
        messages.error(request, f"Too many uploads (limit {settings.UPLOAD_RATE_LIMIT} per user): try again in "
                                f"{wait} s.")
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


def batch_images(batch):
    return batch.images.order_by("id").prefetch_related("predictions")


@login_required
def batch(request, pk):
    """One card per image, updated live by batch.js."""
    batch = batch_or_404(request, pk)
    return render(request, "classifier/batch.html", {
        "batch": batch, "images": batch_images(batch), "counts": batch.status_counts(),
        "rendered_at": timezone.now().isoformat(),
    })


def image_state(image):
    """What a card shows, as JSON."""
    predictions = list(image.predictions.all())
    return {
        "id": str(image.uuid),
        "status": image.status,
        "status_display": image.get_status_display(),
        "error": image.error,
        "predictions": [{"label": p.label, "score": round(p.score, 4)} for p in predictions],
        "thumbnail": image.thumbnail_url,
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
    since -= CLOCK_SKEW
    return images.filter(Q(queued_at__gte=since) | Q(started_at__gte=since) | Q(finished_at__gte=since))


@login_required
@require_GET
def batch_status(request, pk):
    """Counts, and the images changed since the `since` timestamp of the previous answer,
    or only the images named in `ids` (comma-separated), whose thumbnail links expired."""
    batch = batch_or_404(request, pk)
    now = timezone.now()
    try:
        since = parse_datetime(request.GET.get("since", ""))
    except ValueError:
        since = None
    if since and timezone.is_naive(since):
        since = timezone.make_aware(since, UTC)
    counts = batch.status_counts()
    images = changed_since(batch_images(batch), since)
    if "ids" in request.GET:  # fresh thumbnail URLs for these cards only
        images = images.filter(uuid__in=uuids_in(request.GET["ids"]))
    return JsonResponse({
        "now": now.isoformat(),
        "counts": counts,
        "finished": counts["queued"] + counts["processing"] == 0,
        "images": [image_state(image) for image in images],
    })


@login_required
def images(request):
    """All the user's images, filtered by status and searched by top label."""
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


@login_required
@require_POST
def retry_batch(request, pk):
    batch = batch_or_404(request, pk)
    count = tasks.requeue(batch.images.failed_ids())
    messages.success(request, f"{count} failed image(s) queued again." if count else "No failed images to retry.")
    return redirect("classifier:batch", pk)
