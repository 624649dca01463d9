"""Classifier fixtures: the model artifacts (built if missing), loaded classifiers, test photos.

Loading TensorFlow and the model is the slow part, so each classifier is loaded
once per session and only by the tests that ask for it.
"""
import warnings

import pytest
from django.conf import settings

from classifier import efficientnet
from classifier.models import Batch, Image
from tests.corpus import photo, photo_jpeg


@pytest.fixture(scope="session")
def model_dir():
    """settings.MODEL_DIR with the EfficientNet artifacts, built as `manage.py build_model` does."""
    with warnings.catch_warnings():
        # Keras' TensorFlow backend trips a NumPy 2 deprecation when saving; not ours to fix.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        efficientnet.build_artifacts(settings.MODEL_DIR)
    return settings.MODEL_DIR


@pytest.fixture(scope="session")
def keras_classifier(model_dir):
    from classifier.inference import load_classifier

    return load_classifier("efficientnet_lite0", "keras")


@pytest.fixture(scope="session")
def litert_classifier(model_dir):
    from classifier.inference import load_classifier

    return load_classifier("efficientnet_lite0", "litert")


@pytest.fixture(scope="session")
def int8_classifier(model_dir):
    from classifier.inference import load_classifier

    return load_classifier("efficientnet_lite0", "litert-int8")


@pytest.fixture(scope="session")
def configured_classifier(model_dir):
    """get_classifier() as the worker and the classify command see it."""
    from classifier.inference import get_classifier

    return get_classifier()


def make_image(user, **fields):
    """An Image row in a batch of its own (no stored file)."""
    batch = Batch.objects.create(owner=user)
    return Image.objects.create(owner=user, batch=batch, file="images/x/original.jpg", original_name="x.jpg",
                                size=10, sha256="0" * 64, **fields)


@pytest.fixture(scope="session")
def photos():
    """scikit-image's test photos as PIL RGB images (copies: corpus.photo caches its own)."""
    return {name: photo(name).copy() for name in ("chelsea", "coffee", "astronaut")}


@pytest.fixture(scope="session")
def photo_files(photos):
    """The photos encoded as files would be: {name: JPEG bytes}."""
    return {name: photo_jpeg(name) for name in photos}
