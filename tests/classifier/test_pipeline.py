"""The one classification path: real photos, bad input, batching, and parity between the
worker, the command line and the reference preprocessing."""
import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from PIL import Image

from classifier import pipeline
from classifier.decoding import open_image
from classifier.direct_uploads import Declared, commit_upload, start_upload
from classifier.headers import UndecodableImage
from classifier.inference import MAX_BATCH
from classifier.models import Image as ImageRow
from classifier.upload import check_upload
from imgsite.node import worker_name
from tests.conftest import wait_until
from tests.corpus import ACCEPTED, bad_files, decode_bombs, encode, photo, photo_avif, photo_heic, photo_jpeg

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def same(data):
    return data


def classify(sources, classifier, **options):
    return [result for batch in pipeline.classify(sources, same, classifier=classifier, **options) for result in batch]


def camera_sized(name, scale, quality=92):
    """A real photo enlarged to a camera's size and saved as a JPEG, so that the worker decodes
    it at a reduced scale."""
    image = photo(name)
    return encode(image.resize((image.width * scale, image.height * scale), Image.Resampling.BICUBIC), "JPEG",
                  quality=quality)


def test_it_recognises_a_cat_and_a_coffee(litert_classifier, photo_files):
    cat, coffee = classify([photo_files["chelsea"], photo_files["coffee"]], litert_classifier)
    assert cat.ok and coffee.ok
    assert cat.labels[0].index in CATS and cat.labels[0].wnid.startswith("n0212")
    assert coffee.labels[0].index in COFFEE
    assert coffee.labels[0].label == "espresso" and coffee.labels[0].score > 0.5


def test_labels_are_top_k_in_descending_order(litert_classifier, photo_files):
    (result,) = classify([photo_files["astronaut"]], litert_classifier, top_k=3)
    scores = [label.score for label in result.labels]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert 0 < sum(scores) <= 1.0001


def test_a_tiny_image_still_gets_labels(litert_classifier, photos):
    tiny = encode(photos["chelsea"].resize((16, 16), Image.Resampling.LANCZOS), "PNG", optimize=True)
    assert len(tiny) < 2048
    (result,) = classify([tiny], litert_classifier)
    assert result.ok and len(result.labels) == 5


def test_bad_entries_fail_alone_with_a_code_and_good_ones_succeed(litert_classifier, photo_files):
    sources = [photo_files["chelsea"], b"<html>nope</html>", b"", photo_files["coffee"][:2000], photo_files["coffee"]]
    results = classify(sources, litert_classifier)
    assert [result.ok for result in results] == [True, False, False, False, True]
    assert (results[1].code, results[1].error) == ("not_an_image", "Not an image: looks like HTML/text.")
    assert (results[2].code, results[2].error) == ("empty", "The file is empty.")
    assert results[3].code == "truncated" and not results[3].labels
    assert results[0].labels[0].index in CATS and results[4].labels[0].index in COFFEE


def test_thumbnails_are_made_only_when_asked_for(litert_classifier, photo_files):
    (plain,) = classify([photo_files["coffee"]], litert_classifier)
    (with_thumbnail,) = classify([photo_files["coffee"]], litert_classifier, thumbnails=True)
    assert plain.thumbnail == b""
    assert Image.open(io.BytesIO(with_thumbnail.thumbnail)).size == (256, 171)


def test_a_missing_file_is_reported_as_missing(litert_classifier, tmp_path):
    (result,) = pipeline.classify_files([str(tmp_path / "nope.jpg")], classifier=litert_classifier)
    assert (result.code, result.error) == ("missing", "No such file.")


class CountingClassifier:
    """A stand-in model: records batch sizes, predicts class 7 for everything."""

    name, runtime, input_size = "counting", "none", 4

    def __init__(self):
        self.batch_sizes = []

    def preprocess(self, image):
        return np.zeros((4, 4, 3), np.float32)

    def predict(self, batch):
        self.batch_sizes.append(len(batch))
        probabilities = np.zeros((len(batch), 1000), np.float32)
        probabilities[:, 7] = 1.0
        return probabilities


def test_it_makes_one_model_call_per_chunk_of_max_batch():
    counting = CountingClassifier()
    good = encode(Image.new("RGB", (8, 8)), "PNG")
    bad = 3 * MAX_BATCH - 2  # in the third chunk, which then sends one image fewer
    sources = [good] * bad + [b"junk"] + [good]
    results = classify(iter(sources), counting)
    assert counting.batch_sizes == [MAX_BATCH, MAX_BATCH, MAX_BATCH - 1]
    assert len(results) == bad + 2 and not results[bad].ok
    assert all(result.labels[0].index == 7 for index, result in enumerate(results) if index != bad)


def test_a_chunk_of_only_bad_files_makes_no_model_call():
    counting = CountingClassifier()
    results = classify([b"\x00\x01\x02junk\xff", b""], counting)
    assert [(result.code, result.error) for result in results] == [
        ("unsupported", "Unrecognised image format; upload JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP or TIFF."),
        ("empty", "The file is empty."),
    ]
    assert counting.batch_sizes == []


def committed_straight_to_storage(user, files):
    """Files uploaded straight to S3 and committed, as the direct-upload API does (the presigned
    POST stores the bytes as they are), then claimed by this worker."""
    started = start_upload(user, [Declared(index, name, len(data)) for index, (name, data) in enumerate(files.items())])
    data = list(files.values())
    for slot in started.slots:
        default_storage.write(slot.key, data[slot.index], "application/octet-stream")
    result = commit_upload(user, started.batch, started.token, [slot.key for slot in started.slots])
    return ImageRow.objects.claim([image.pk for image in result.accepted], worker_name())


@pytest.mark.django_db
def test_originals_uploaded_straight_to_storage_are_checked_as_uploads_are(user, aws):
    bad = {name: data for name, data in bad_files().items() if data}  # an empty file is refused at the start
    files = {"cat.jpg": photo_jpeg("chelsea"), **bad}
    images = committed_straight_to_storage(user, files)
    assert len(images) == len(files) and all(image.content_type == "" for image in images)

    ImageRow.objects.finish(pipeline.classify_stored(images, classifier=CountingClassifier()), "counting")

    rows = {image.original_name: image for image in ImageRow.objects.all()}
    cat = rows.pop("cat.jpg")
    assert cat.status == "done" and cat.thumbnail.name.endswith("/thumbnail.jpg")
    assert (cat.content_type, cat.width, cat.height) == ("image/jpeg", 451, 300)
    assert cat.sha256 == hashlib.sha256(files["cat.jpg"]).hexdigest()
    for name, image in rows.items():
        with pytest.raises(UndecodableImage) as refused:  # what an upload through the web tier is refused with
            check_upload(SimpleUploadedFile(name, files[name]))
        assert (image.status, image.error_code, image.error) == ("failed", refused.value.code, str(refused.value)), name
        assert image.sha256 == hashlib.sha256(files[name]).hexdigest() and image.content_type == ""


# Real photos at a camera's size; chelsea at 4× is the close call: Egyptian cat 0.39, tiger cat 0.36.
CAMERA_PHOTOS = [("chelsea", 4), ("chelsea", 6), ("coffee", 4), ("coffee", 6), ("rocket", 3), ("rocket", 4),
                 ("astronaut", 4), ("astronaut", 6)]


def test_the_reduced_decode_stays_within_a_hundredth_of_the_reference(litert_classifier):
    """The worker decodes a JPEG at a reduced DCT scale; its model input must give nearly the same
    probabilities as the reference preprocessing (full decode, centre crop, resize)."""
    reduced_any, worst = False, 0.0
    for name, scale in CAMERA_PHOTOS:
        data = camera_sized(name, scale)
        full, reduced = open_image(data), open_image(data, min_side=pipeline.DECODE_MIN_SIDE)
        reduced_any |= reduced.size != full.size
        reference, served = litert_classifier.predict(np.stack([litert_classifier.preprocess(full),
                                                                litert_classifier.preprocess(reduced)]))
        worst = max(worst, float(np.abs(served - reference).max()))
        if (name, scale) == ("chelsea", 4):
            top_two = np.sort(reference)[-2:]
            assert top_two[1] - top_two[0] < 0.05  # it is a close call...
            assert np.argmax(served) == np.argmax(reference)  # ...which the reduced decode does not flip
    assert reduced_any
    assert worst <= 0.01


# A web-palette photo is dithered: high-frequency noise, which a box reduce averages a little
# differently from the bicubic resize of the full picture.
PNG_TOLERANCE = {"RGB": 0.01, "RGBA": 0.01, "P": 0.02}


@pytest.mark.parametrize("mode", PNG_TOLERANCE)
def test_a_reduced_png_gives_nearly_the_reference_probabilities(mode, litert_classifier):
    """Pictures other than JPEGs are box-reduced as they are converted to RGB; the model must
    see nearly what it sees from the full decode."""
    reduced_any, worst = False, 0.0
    for name, scale in (("chelsea", 8), ("coffee", 6), ("astronaut", 6), ("rocket", 6)):
        image = photo(name)
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.BICUBIC).convert(mode)
        data = encode(image, "PNG", compress_level=1)
        full, reduced = open_image(data), open_image(data, min_side=pipeline.DECODE_MIN_SIDE)
        reduced_any |= reduced.size != full.size
        reference, served = litert_classifier.predict(np.stack([litert_classifier.preprocess(full),
                                                                litert_classifier.preprocess(reduced)]))
        worst = max(worst, float(np.abs(served - reference).max()))
    assert reduced_any
    assert worst <= PNG_TOLERANCE[mode]


@pytest.mark.parametrize("encode_photo", [photo_avif, photo_heic], ids=["AVIF", "HEIC"])
def test_avif_and_heic_photos_are_recognised(encode_photo, litert_classifier):
    results = classify([encode_photo(name) for name in ACCEPTED], litert_classifier)
    for name, result in zip(ACCEPTED, results):
        assert result.ok and result.labels[0].wnid in ACCEPTED[name], (name, result.labels[:2])


def test_the_decode_budget_bounds_the_decodes_in_flight(settings, monkeypatch):
    """Decodes in the pool threads together never hold more than the process's budget."""
    settings.MAX_PIXELS_PER_BYTE = 0
    settings.DECODE_MEMORY_BUDGET = settings.DECODE_MAX_IMAGE_BYTES = 400 * 2**20
    seen = []

    def open_and_note(data, **options):
        seen.append(pipeline_budget().in_use)
        return open_image(data, **options)

    monkeypatch.setattr(pipeline, "open_image", open_and_note)
    bombs = [data for name, data in decode_bombs().items() if name.endswith(".png")]
    threads = pipeline.Pools(ThreadPoolExecutor(max_workers=8), ThreadPoolExecutor(max_workers=8))
    results = [result for batch in pipeline.classify(bombs, same, classifier=CountingClassifier(), pool=threads)
               for result in batch]
    for pool in threads:
        pool.shutdown()
    assert all(result.ok for result in results)
    assert len(seen) == len(bombs) and max(seen) <= 400 * 2**20
    assert pipeline_budget().in_use == 0


def pipeline_budget():
    from classifier.decode_budget import DECODE_BUDGET

    return DECODE_BUDGET


def test_the_reduced_decode_keeps_the_full_size_for_the_crop():
    data = camera_sized("coffee", 6)  # 3600×2400
    reduced = open_image(data, min_side=pipeline.DECODE_MIN_SIDE)
    assert reduced.size == (1800, 1200) and reduced.info["full_size"] == (3600, 2400)


@pytest.mark.e2e
def test_the_served_result_equals_the_command_lines(alice, workers, empty_queues, tmp_path):
    """The same bytes through the API and a worker, and through `manage.py classify`: the same labels."""
    files = {"close-call.jpg": camera_sized("chelsea", 4), "coffee.jpg": camera_sized("coffee", 3)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    workers("parity")
    response = alice.post(reverse("classifier:upload"),
                          {"files": [SimpleUploadedFile(name, data, "image/jpeg") for name, data in files.items()]})
    assert response.status_code == 302
    wait_until(lambda: ImageRow.objects.filter(status="done").count() == 2, timeout=120,
               message="both images to be classified")

    out = io.StringIO()
    call_command("classify", *[str(tmp_path / name) for name in files], "--json", stdout=out)
    command = {json.loads(line)["name"].rsplit("/", 1)[1]: json.loads(line)["predictions"]
               for line in out.getvalue().splitlines()}
    for image in ImageRow.objects.prefetch_related("predictions"):
        served = [(p.rank, p.wnid, p.score) for p in image.predictions.all()]
        expected = [(p["rank"], p["wnid"], p["score"]) for p in command[image.original_name]]
        assert [row[:2] for row in served] == [row[:2] for row in expected], image.original_name
        assert [row[2] for row in served] == pytest.approx([row[2] for row in expected], abs=1e-6)
