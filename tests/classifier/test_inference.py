"""classify_batch and the configured classifier, on real photos and on bad input."""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from classifier.inference import (
    MAX_BATCH,
    Result,
    classify_batch,
    get_classifier,
    load_classifier,
)

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
ROOT = Path(__file__).resolve().parents[2]


def test_importing_inference_does_not_import_tensorflow():
    code = (
        "import sys, django; django.setup(); import classifier.inference; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def test_it_recognises_a_cat_and_a_coffee(keras_classifier, photo_files):
    cat, coffee = classify_batch([photo_files["chelsea"], photo_files["coffee"]], classifier=keras_classifier)
    assert cat.ok and coffee.ok
    assert cat.labels[0].index in CATS and cat.labels[0].wnid.startswith("n0212")
    assert coffee.labels[0].index in COFFEE
    assert coffee.labels[0].label == "espresso" and coffee.labels[0].score > 0.5


def test_labels_are_top_k_in_descending_order(keras_classifier, photos):
    (result,) = classify_batch([photos["astronaut"]], top_k=3, classifier=keras_classifier)
    scores = [label.score for label in result.labels]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert 0 < sum(scores) <= 1.0001


def test_a_tiny_image_still_gets_labels(keras_classifier, photos, tmp_path):
    tiny = tmp_path / "tiny.png"
    photos["chelsea"].resize((16, 16), Image.Resampling.LANCZOS).save(tiny, optimize=True)
    assert tiny.stat().st_size < 2048
    (result,) = classify_batch([tiny], classifier=keras_classifier)
    assert result.ok and len(result.labels) == 5


def test_bad_entries_fail_alone_and_good_ones_succeed(keras_classifier, photos, photo_files, tmp_path):
    path = tmp_path / "coffee.jpg"
    path.write_bytes(photo_files["coffee"])
    sources = [photo_files["chelsea"], b"<html>nope</html>", str(path), io.BytesIO(photo_files["chelsea"]),
               b"", photos["chelsea"], photo_files["coffee"][:2000]]
    results = classify_batch(sources, classifier=keras_classifier)
    assert [result.ok for result in results] == [True, False, True, True, False, True, False]
    assert results[1].error == "Not an image: looks like HTML/text."
    assert results[4].error == "The file is empty."
    assert results[6].error and not results[6].labels
    # the same bytes as bytes and as a file: the same labels (scores equal up to float rounding,
    # which depends on an image's row in the batch)
    assert [label.index for label in results[0].labels] == [label.index for label in results[3].labels]
    assert [label.score for label in results[0].labels] == pytest.approx([label.score for label in results[3].labels])
    assert results[2].labels[0].index in COFFEE and results[5].labels[0].index in CATS


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
    good = Image.new("RGB", (8, 8))
    bad = 3 * MAX_BATCH - 2  # in the third chunk, which then sends one image fewer
    sources = [good] * bad + [b"junk"] + [good]
    results = classify_batch(iter(sources), classifier=counting)
    assert counting.batch_sizes == [MAX_BATCH, MAX_BATCH, MAX_BATCH - 1]
    assert len(results) == bad + 2 and not results[bad].ok
    assert all(result.labels[0].index == 7 for index, result in enumerate(results) if index != bad)


def test_a_chunk_of_only_bad_files_makes_no_model_call():
    counting = CountingClassifier()
    assert classify_batch([b"\x00\x01\x02junk\xff", b""], classifier=counting) == [
        Result(error="Unrecognised image format; upload JPEG, PNG, GIF, WebP, BMP or TIFF."),
        Result(error="The file is empty."),
    ]
    assert counting.batch_sizes == []


def test_litert_agrees_with_keras(keras_classifier, litert_classifier, photos):
    batch = np.stack([keras_classifier.preprocess(image) for image in photos.values()])
    keras_p, litert_p = keras_classifier.predict(batch), litert_classifier.predict(batch)
    assert np.abs(keras_p - litert_p).max() <= 1e-4
    top5 = [np.argsort(-p, axis=1)[:, :5] for p in (keras_p, litert_p)]
    np.testing.assert_array_equal(*top5)
    # A second, different batch size resizes the interpreter.
    np.testing.assert_allclose(litert_classifier.predict(batch[:1]), litert_p[:1], atol=1e-6)


def test_get_classifier_follows_settings_and_is_cached(configured_classifier, settings):
    assert get_classifier() is configured_classifier
    assert (configured_classifier.name, configured_classifier.runtime) == (
        settings.CLASSIFIER_MODEL, settings.CLASSIFIER_RUNTIME)


@pytest.mark.parametrize("name, runtime, message", [
    ("vgg16", "keras", "CLASSIFIER_MODEL='vgg16' is not one of"),
    ("efficientnet_lite0", "onnx", "CLASSIFIER_RUNTIME='onnx' is not one of"),
])
def test_unknown_models_and_runtimes_are_refused(name, runtime, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_classifier(name, runtime)
