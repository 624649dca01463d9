"""ResNet50 by configuration, with a weights file the test itself creates.

The weights are random (the real ImageNet file is placed by worker_ami and is
not in the repository), so these tests check loading and plumbing, not accuracy.
"""
import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from classifier import resnet
from classifier.inference import get_classifier, load_classifier, softmax
from classifier.pipeline import classify
from tests.corpus import photo_jpeg

# Keras' TensorFlow backend trips a NumPy 2 deprecation when saving weights; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def random_resnet(tmp_path_factory):
    """A ResNet50 with random weights, and the .weights.h5 file they were saved to."""
    import keras

    keras.utils.set_random_seed(0)
    model = resnet.build_keras_model()
    path = tmp_path_factory.mktemp("resnet") / "resnet50_random.weights.h5"
    model.save_weights(path)
    return model, path


def test_it_loads_the_configured_weights_file(random_resnet, settings, photos):
    model, path = random_resnet
    settings.CLASSIFIER_MODEL, settings.RESNET50_WEIGHTS = "resnet50", str(path)
    settings.CLASSIFIER_RUNTIME = "keras"
    get_classifier.cache_clear()
    try:
        classifier = get_classifier()
        assert (classifier.name, classifier.runtime) == ("resnet50", "keras")
        batch = np.stack([classifier.preprocess(photos["chelsea"]), classifier.preprocess(photos["coffee"])])
        assert batch.shape == (2, 224, 224, 3)
        expected = softmax(model.predict_on_batch(batch))
        np.testing.assert_allclose(classifier.predict(batch), expected, atol=1e-5)
        [(result,)] = classify([photo_jpeg("astronaut")], lambda data: data, top_k=3)
        assert result.ok and len(result.labels) == 3
    finally:
        get_classifier.cache_clear()


def test_preprocess_is_caffe_style_bgr_minus_mean(photos):
    from PIL import Image

    red = resnet.preprocess(Image.new("RGB", (300, 500), (255, 0, 0)))
    assert red.shape == (224, 224, 3)
    np.testing.assert_allclose(red[0, 0], [-103.939, -116.779, 255 - 123.68], atol=1e-3)


def test_missing_weights_say_where_they_are_expected(settings, tmp_path):
    settings.RESNET50_WEIGHTS = str(tmp_path / "absent.weights.h5")
    with pytest.raises(ImproperlyConfigured, match=r"absent\.weights\.h5.*worker_ami places them"):
        load_classifier("resnet50", "keras")


def test_resnet50_has_no_litert_artifact():
    with pytest.raises(ImproperlyConfigured, match="resnet50 has no litert artifact"):
        load_classifier("resnet50", "litert")
