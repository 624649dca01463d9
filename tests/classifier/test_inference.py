"""The model: both runtimes agree, the configured one is loaded once, TensorFlow loads lazily."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from classifier.efficientnet import preprocess
from classifier.inference import get_classifier, load_classifier
from classifier.labels import imagenet_labels
from tests.corpus import ACCEPTED, photo

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_modules_do_not_import_tensorflow():
    code = (
        "import sys, django; django.setup(); import classifier.urls, classifier.tasks, classifier.pipeline; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


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
    ("resnet50", "litert-int8", "resnet50 has no litert-int8 artifact"),
])
def test_unknown_models_and_runtimes_are_refused(name, runtime, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_classifier(name, runtime)


# The int8 model may differ from the float one, within these bounds, on the test photos (none of
# which is a calibration photo); bench/int8.py measures agreement on 252 varied inputs.
INT8_MAX_ABS_DP = 0.1
INT8_MIN_TOP5_OVERLAP = 4


def test_int8_classifies_the_test_photos_like_the_float_model(litert_classifier, int8_classifier):
    names = ("chelsea", "coffee", "astronaut", "rocket")
    batch = np.stack([litert_classifier.preprocess(photo(name)) for name in names])
    float_p, int8_p = litert_classifier.predict(batch), int8_classifier.predict(batch)
    assert int8_classifier.runtime == "litert-int8"
    assert np.abs(float_p - int8_p).max() <= INT8_MAX_ABS_DP
    float_top5, int8_top5 = np.argsort(-float_p, axis=1)[:, :5], np.argsort(-int8_p, axis=1)[:, :5]
    np.testing.assert_array_equal(float_top5[:, 0], int8_top5[:, 0])
    assert all(len(set(a) & set(b)) >= INT8_MIN_TOP5_OVERLAP for a, b in zip(float_top5, int8_top5))
    # The cat is a cat (and the coffee and the rocket what they are).
    for name, top1 in zip(names, int8_top5[:, 0]):
        assert name not in ACCEPTED or imagenet_labels()[top1][0] in ACCEPTED[name]


@pytest.mark.parametrize("runtime", ["litert", "litert-int8"])
def test_litert_probabilities_do_not_depend_on_threads_or_batch_size(runtime, model_dir, photos, settings):
    """The worker and `manage.py classify` may run different thread counts and batch sizes."""
    batch = np.stack([preprocess(image) for image in photos.values()] * 2)[:4]
    settings.CLASSIFIER_THREADS = 1
    reference = load_classifier("efficientnet_lite0", runtime).predict(batch)
    for threads in (2, 4):
        settings.CLASSIFIER_THREADS = threads
        classifier = load_classifier("efficientnet_lite0", runtime)
        np.testing.assert_array_equal(classifier.predict(batch), reference)
        np.testing.assert_array_equal(np.concatenate([classifier.predict(row[None]) for row in batch]), reference)
