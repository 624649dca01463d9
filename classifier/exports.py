"""Exporting a batch's results as CSV (one row per image) or JSON, streamed."""
import csv
import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse

from classifier.views import batch_or_404

TOP_K = settings.CLASSIFIER_TOP_K  # the predictions the worker stores per image
# The API's field names: name, label and score (then label_2, score_2, …), status, error_code, error;
# then the top label's broader categories ("; "-separated) and whether it is a guess (LOW_CONFIDENCE_BELOW).
CSV_HEADER = ["name", "label", "score"] + [
    column for rank in range(2, TOP_K + 1) for column in (f"label_{rank}", f"score_{rank}")
] + ["status", "error_code", "error", "parents", "low_confidence"]
# A cell starting with one of these is a formula to a spreadsheet; user-chosen names must not be.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text):
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def images_of(batch):
    """The batch's images in upload order, read in chunks with their predictions."""
    return batch.images.order_by("id").prefetch_related("predictions").iterator(chunk_size=500)


def csv_row(image):
    predictions = list(image.predictions.all())[:TOP_K]
    cells = [safe_cell(image.original_name)]
    for rank in range(TOP_K):
        if rank < len(predictions):
            cells += [predictions[rank].label, f"{predictions[rank].score:.4f}"]
        else:
            cells += ["", ""]
    top = predictions[0] if predictions else None
    return cells + [image.status, image.error_code, safe_cell(image.error), "; ".join(top.parents) if top else "",
                    ("yes" if top.is_low_confidence else "no") if top else ""]


class Echo:
    """A file-like object whose write() returns the line, for csv.writer in a generator."""

    def write(self, value):
        return value


def csv_lines(batch):
    writer = csv.writer(Echo())
    yield writer.writerow(CSV_HEADER)
    for image in images_of(batch):
        yield writer.writerow(csv_row(image))


def json_chunks(batch):
    """A JSON document written piece by piece, so a big batch is never held in memory."""
    yield json.dumps({"batch": batch.pk, "created_at": batch.created_at.isoformat()})[:-1] + ', "images": ['
    for number, image in enumerate(images_of(batch)):
        yield ("," if number else "") + json.dumps({
            "id": str(image.uuid), "name": image.original_name, "status": image.status,
            "error_code": image.error_code, "error": image.error, "model": image.model_name,
            "predictions": [{"rank": p.rank, "label": p.label, "index": p.class_index, "wnid": p.wnid,
                             "score": p.score, "low_confidence": p.is_low_confidence, "parents": p.parents}
                            for p in image.predictions.all()],
        })
    yield "]}\n"


def download(chunks, content_type, filename):
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def batch_csv(request, pk):
    batch = batch_or_404(request, pk)
    return download(csv_lines(batch), "text/csv; charset=utf-8", f"batch-{batch.pk}.csv")


@login_required
def batch_json(request, pk):
    batch = batch_or_404(request, pk)
    return download(json_chunks(batch), "application/json", f"batch-{batch.pk}.json")
