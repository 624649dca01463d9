"""Classifier fixtures: the model artifacts (built if missing), loaded classifiers, test photos.

Loading TensorFlow and the model is the slow part, so each classifier is loaded
once per session and only by the tests that ask for it.
"""
import io
import warnings

import pytest
from django.conf import settings
from PIL import Image

from classifier import efficientnet


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
def configured_classifier(model_dir):
    """get_classifier() as the worker and the classify command see it."""
    from classifier.inference import get_classifier

    return get_classifier()


@pytest.fixture(scope="session")
def photos():
    """scikit-image's test photos as PIL RGB images."""
    from skimage import data

    return {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in ("chelsea", "coffee", "astronaut")}


def encode(image, format="PNG", **options):
    output = io.BytesIO()
    image.save(output, format=format, **options)
    return output.getvalue()


@pytest.fixture(scope="session")
def photo_files(photos):
    """The photos encoded as files would be: {name: bytes}."""
    return {name: encode(image, "JPEG", quality=90) for name, image in photos.items()}
