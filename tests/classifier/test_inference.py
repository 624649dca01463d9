"""The model: both runtimes agree, the configured one is loaded once, TensorFlow loads lazily."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from classifier.inference import get_classifier, load_classifier

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
])
def test_unknown_models_and_runtimes_are_refused(name, runtime, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        load_classifier(name, runtime)
