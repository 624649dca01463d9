"""ResNet50 end to end: a worker with CLASSIFIER_MODEL=resnet50 loads a placed weights file and classifies.

The weights file is made here, with random weights (keras.applications.ResNet50(weights=None)):
the real ImageNet file is placed by worker_ami at bake time and is not in the repository. The
labels are therefore meaningless; the test checks the result's structure, not its classes.
"""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Image
from tests.conftest import wait_until
from tests.corpus import photo_jpeg

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


@pytest.fixture
def random_weights(tmp_path):
    """A ResNet50 weights file with random weights, where settings.RESNET50_WEIGHTS will point."""
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path / "resnet50_random.weights.h5"
    keras.applications.ResNet50(weights=None).save_weights(path)
    return path


def test_a_resnet50_worker_classifies_with_the_placed_weights(alice, workers, empty_queues, random_weights):
    workers("resnet50-1", env={"CLASSIFIER_MODEL": "resnet50", "CLASSIFIER_RUNTIME": "keras",
                               "RESNET50_WEIGHTS": str(random_weights)})
    files = [SimpleUploadedFile("chelsea.jpg", photo_jpeg("chelsea"), "image/jpeg")]
    assert alice.post(reverse("classifier:upload"), {"files": files}).status_code == 302

    image = wait_until(lambda: Image.objects.exclude(status__in=["queued", "processing"]).first(), timeout=180,
                       message="the ResNet50 worker to finish the image")

    assert image.status == "done", image.error
    assert image.model_name == "resnet50"
    predictions = list(image.predictions.order_by("rank"))
    assert [prediction.rank for prediction in predictions] == [1, 2, 3, 4, 5]
    scores = [prediction.score for prediction in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    assert len({prediction.class_index for prediction in predictions}) == 5
    assert all(0 <= prediction.class_index < 1000 and prediction.label for prediction in predictions)
    assert image.thumbnail.name.endswith("thumbnail.jpg")
