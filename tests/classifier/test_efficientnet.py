"""EfficientNet-Lite0 in Keras against golden logits from the reference PyTorch model.

The golden file comes from bench/golden/make_golden.py (run in a separate venv
with torch); this suite needs no torch.
"""
import os
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from classifier import efficientnet

GOLDEN = Path(__file__).parent / "data" / "efficientnet_lite0_golden.npz"
MAX_LOGIT_DELTA = 1e-4


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def test_keras_logits_match_the_pytorch_reference(keras_classifier, golden):
    logits = keras_classifier.logits(golden["inputs"])
    assert logits.shape == (len(golden["names"]), 1000)
    assert np.abs(logits - golden["logits"]).max() <= MAX_LOGIT_DELTA


def test_litert_logits_match_the_pytorch_reference(litert_classifier, golden):
    assert np.abs(litert_classifier.logits(golden["inputs"]) - golden["logits"]).max() <= MAX_LOGIT_DELTA


def test_preprocess_reproduces_the_golden_photo_inputs(photos, golden):
    for index, name in enumerate(golden["names"][:2]):
        np.testing.assert_array_equal(efficientnet.preprocess(photos[str(name)]), golden["inputs"][index])


def test_preprocess_scales_pixels_to_about_minus_one_to_one():
    white = efficientnet.preprocess(Image.new("RGB", (500, 300), (255, 255, 255)))
    black = efficientnet.preprocess(Image.new("RGB", (17, 5), (0, 0, 0)))
    assert white.shape == black.shape == (224, 224, 3)
    assert white.dtype == np.float32
    assert np.allclose(white, 1.0) and np.allclose(black, -127 / 128)


def test_preprocess_centre_crops_the_short_side():
    image = Image.new("RGB", (600, 256), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 150, 256))  # a red band on the left, outside the centre crop
    assert (efficientnet.preprocess(image)[..., 0] < 0).all()


def test_every_layer_gets_a_tensor_from_the_state_dict():
    names = efficientnet.torch_prefixes()
    assert len([name for name in names if name.endswith("_project")]) == 16
    assert len([name for name in names if name.endswith("_expand")]) == 15


def test_build_artifacts_skips_up_to_date_artifacts(model_dir):
    assert efficientnet.build_artifacts(model_dir) == []


def test_a_missing_model_names_the_build_command(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="python manage.py build_model"):
        efficientnet.load_keras_model(tmp_path)
    with pytest.raises(ImproperlyConfigured, match="python manage.py build_model"):
        efficientnet.checked_tflite_path(tmp_path)


def test_a_corrupt_keras_model_names_the_build_command(tmp_path):
    efficientnet.keras_path(tmp_path).write_bytes(b"not a zip file")
    with pytest.raises(ImproperlyConfigured, match="python manage.py build_model --force"):
        efficientnet.load_keras_model(tmp_path)


def test_a_corrupt_tflite_model_names_the_build_command(tmp_path, settings):
    from classifier.inference import load_classifier

    settings.MODEL_DIR = tmp_path
    efficientnet.tflite_path(tmp_path).write_bytes(b"\0" * 64)
    with pytest.raises(ImproperlyConfigured, match="python manage.py build_model --force"):
        load_classifier("efficientnet_lite0", "litert")


def test_the_int8_model_is_built_beside_the_float_model_with_float_input_and_output(model_dir):
    from ai_edge_litert.interpreter import Interpreter

    path = efficientnet.int8_tflite_path(model_dir)
    assert path.stat().st_size < efficientnet.tflite_path(model_dir).stat().st_size / 3
    interpreter = Interpreter(model_path=str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    # Every tensor inside is integer (int8, and int32 biases); only the input and the output are float.
    dtypes = [tensor["dtype"] for tensor in interpreter.get_tensor_details()]
    assert dtypes.count(np.float32) == 2 and dtypes.count(np.int8) > 100


def test_the_calibration_photos_ship_with_the_code():
    inputs = efficientnet.calibration_inputs()
    assert len(inputs) >= 30
    assert all(array.shape == (224, 224, 3) for array in inputs)
    # None of the photos the tests classify, so agreement on them is measured on unseen photos.
    names = {path.stem.rsplit("-", 1)[0] for path in efficientnet.calibration_files()}
    assert not names & {"chelsea", "coffee", "astronaut", "rocket"}


def test_only_artifacts_older_than_their_own_sources_are_stale(tmp_path, monkeypatch):
    models, photos = tmp_path / "models", tmp_path / "calibration"
    models.mkdir(), photos.mkdir()
    monkeypatch.setattr(efficientnet, "CALIBRATION_DIR", photos)
    photo = photos / "photo-0.jpg"
    photo.write_bytes(b"jpeg")
    sources = efficientnet.artifact_sources(models)
    assert efficientnet.stale_artifacts(models) == list(sources)  # nothing built yet

    code = max(source.stat().st_mtime for source in (efficientnet.weights_file(), Path(efficientnet.__file__)))
    os.utime(photo, (code, code))
    for path in sources:
        path.write_bytes(b"artifact")
        os.utime(path, (code + 10, code + 10))
    assert efficientnet.stale_artifacts(models) == []

    int8, tflite = efficientnet.int8_tflite_path(models), efficientnet.tflite_path(models)
    os.utime(photo, (code + 20, code + 20))  # a changed calibration photo
    assert efficientnet.stale_artifacts(models) == [int8]
    os.utime(tflite, (code - 10, code - 10))  # older than the weights or the code
    assert efficientnet.stale_artifacts(models) == [tflite, int8]


def test_a_missing_int8_model_names_the_build_command(tmp_path, settings):
    from classifier.inference import load_classifier

    settings.MODEL_DIR = tmp_path
    with pytest.raises(ImproperlyConfigured, match="efficientnet_lite0_int8.tflite is missing.*build_model"):
        load_classifier("efficientnet_lite0", "litert-int8")
