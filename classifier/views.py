"""Pages: upload images and see each one's status and top label."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from classifier.models import Batch, Image
from classifier.upload import accept_uploads


@login_required
def batches(request):
    """The upload form and the user's batches, newest first."""
    page = Paginator(Batch.objects.filter(owner=request.user), 20).get_page(request.GET.get("page"))
    return render(request, "classifier/batches.html", {"page": page})


@login_required
@require_POST
def upload(request):
    result = accept_uploads(request.user, request.FILES.getlist("files"))
    for refusal in result.refused:
        messages.error(request, f"{refusal.name}: {refusal.reason}")
    if result.batch is None:
        if not result.refused:
            messages.error(request, "Choose at least one image to upload.")
        return redirect("classifier:batches")
    messages.success(request, f"{len(result.accepted)} image(s) queued for classification.")
    return redirect("classifier:batch", result.batch.pk)


@login_required
def batch(request, pk):
    """One card per image of the user's batch."""
    batch = get_object_or_404(Batch, pk=pk, owner=request.user)
    images = Image.objects.filter(batch=batch).order_by("id").prefetch_related("predictions")
    return render(request, "classifier/batch.html", {"batch": batch, "images": images})
