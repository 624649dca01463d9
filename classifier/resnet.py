"""ResNet50 from keras.applications with weights from a local file (never downloaded)."""
from pathlib import Path

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

NAME = "resnet50"
IMAGE_SIZE = 224
RESIZE = 256


def preprocess(image):
    """Resize the short side to 256 (bilinear), centre-crop 224, then Keras' caffe-style preprocess_input."""
    from keras.applications.resnet50 import preprocess_input

    width, height = image.size
    scale = RESIZE / min(width, height)
    resized = image.resize((max(IMAGE_SIZE, round(width * scale)), max(IMAGE_SIZE, round(height * scale))),
                           Image.Resampling.BILINEAR)
    left, top = (resized.width - IMAGE_SIZE) // 2, (resized.height - IMAGE_SIZE) // 2
    cropped = resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    return preprocess_input(np.asarray(cropped, dtype=np.float32))


def build_keras_model():
    """The architecture with fresh weights; outputs logits."""
    import keras

    return keras.applications.ResNet50(weights=None, classifier_activation=None)


def load_keras_model(weights_path):
    """ResNet50 with the weights at weights_path; ImproperlyConfigured if missing or unreadable."""
    path = Path(weights_path)
    if not path.exists():
        raise ImproperlyConfigured(
            f"ResNet50 weights are expected at {path} (settings.RESNET50_WEIGHTS); "
            "worker_ami places them there on worker machines. They are never downloaded at run time."
        )
    model = build_keras_model()
    try:
        model.load_weights(path)
    except Exception as exc:
        raise ImproperlyConfigured(f"ResNet50 weights at {path} could not be loaded: {exc}") from exc
    return model
