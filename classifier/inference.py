"""The model: one per process, chosen by settings, loaded lazily, called on a batch of inputs.

TensorFlow is only imported once `get_classifier()` (or `load_classifier()`) runs,
so the web process can import this module for free. Turning files into model inputs is
classifier.pipeline's job.
"""
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from classifier import efficientnet, resnet
from classifier.labels import imagenet_labels

log = logging.getLogger(__name__)

# Images per model call: LiteRT runs batches of 4 about as fast as larger ones, with fewer
# activations in memory (bench/README.md).
MAX_BATCH = 4
RUNTIMES = ("keras", "litert", "litert-int8")


@dataclass(frozen=True)
class Label:
    index: int
    wnid: str
    label: str
    score: float


@dataclass(frozen=True)
class ModelSpec:
    """How to prepare input for one model and load it per runtime; adding a model is one MODELS entry."""

    name: str
    input_size: int
    preprocess: Callable  # PIL RGB image -> (size, size, 3) float32 array
    load_keras: Callable  # () -> keras.Model returning logits
    tflite_path: Callable | None = None  # () -> path of the .tflite artifact
    int8_tflite_path: Callable | None = None  # () -> path of the int8 .tflite artifact (float in and out)


MODELS = {
    efficientnet.NAME: ModelSpec(
        name=efficientnet.NAME,
        input_size=efficientnet.IMAGE_SIZE,
        preprocess=efficientnet.preprocess,
        load_keras=lambda: efficientnet.load_keras_model(settings.MODEL_DIR),
        tflite_path=lambda: efficientnet.checked_tflite_path(settings.MODEL_DIR),
        int8_tflite_path=lambda: efficientnet.checked_tflite_path(settings.MODEL_DIR, int8=True),
    ),
    resnet.NAME: ModelSpec(
        name=resnet.NAME,
        input_size=resnet.IMAGE_SIZE,
        preprocess=resnet.preprocess,
        load_keras=lambda: resnet.load_keras_model(settings.RESNET50_WEIGHTS),
    ),
}


class Classifier:
    """A loaded model: .name, .runtime, .input_size, .preprocess(image) and .predict(batch)."""

    def __init__(self, spec, runtime, logits):
        self.name = spec.name
        self.runtime = runtime
        self.input_size = spec.input_size
        self.preprocess = spec.preprocess
        self.logits = logits

    def predict(self, batch):
        """(N, size, size, 3) float32 -> (N, 1000) probabilities, in one model call."""
        return softmax(self.logits(np.asarray(batch, dtype=np.float32)))

    def __repr__(self):
        return f"<Classifier {self.name} on {self.runtime}>"


def softmax(logits):
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def keras_logits(model):
    """A compiled batch call of the Keras model (traced once for any batch size)."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)]
    call = tf.function(lambda batch: model(batch, training=False), input_signature=signature)
    return lambda batch: call(batch).numpy()


def litert_threads():
    """Interpreter threads: settings.CLASSIFIER_THREADS, else every core."""
    return settings.CLASSIFIER_THREADS or os.cpu_count() or 1


class LiteRTLogits:
    """LiteRT interpreters, one per batch size in use; one call at a time.

    Resizing an interpreter's input re-plans it and re-packs the weights for XNNPACK, a real
    share of a busy worker's time when groups end in partial batches. So there is an interpreter
    for batches of 1 and one for full batches (MAX_BATCH, or any larger size a benchmark asks
    for), and a partial batch runs as single images, which LiteRT does nearly as fast per image;
    each further interpreter costs tens of MB (bench/README.md)."""

    def __init__(self, path, num_threads):
        self.path, self.num_threads = path, num_threads
        self.interpreters = {}
        self.lock = threading.Lock()
        self.interpreter_for(1)  # an unreadable file fails here, at load time

    def interpreter_for(self, size):
        from ai_edge_litert.interpreter import Interpreter

        if size not in self.interpreters:
            try:
                interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
            except Exception as exc:
                raise ImproperlyConfigured(
                    f"The model file {self.path} is unreadable ({exc}); "
                    f"rebuild it with `{efficientnet.BUILD_COMMAND} --force`."
                ) from exc
            model_input = interpreter.get_input_details()[0]
            input_index = model_input["index"]
            interpreter.resize_tensor_input(input_index, [size, *model_input["shape"][1:]])
            interpreter.allocate_tensors()
            self.interpreters[size] = (interpreter, input_index, interpreter.get_output_details()[0]["index"])
        return self.interpreters[size]

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if 1 < len(batch) < MAX_BATCH:
            return np.concatenate([self.run(batch[i:i + 1]) for i in range(len(batch))])
        return self.run(batch)

    def run(self, batch):
        with self.lock:
            interpreter, input_index, output_index = self.interpreter_for(len(batch))
            interpreter.set_tensor(input_index, batch)
            interpreter.invoke()
            return interpreter.get_tensor(output_index).copy()


def load_classifier(name, runtime):
    """Load model `name` on `runtime` (one of RUNTIMES); not cached, see get_classifier()."""
    if name not in MODELS:
        raise ImproperlyConfigured(f"CLASSIFIER_MODEL={name!r} is not one of {sorted(MODELS)}")
    if runtime not in RUNTIMES:
        raise ImproperlyConfigured(f"CLASSIFIER_RUNTIME={runtime!r} is not one of {list(RUNTIMES)}")
    spec = MODELS[name]
    if runtime in ("litert", "litert-int8"):
        path = spec.tflite_path if runtime == "litert" else spec.int8_tflite_path
        if path is None:
            raise ImproperlyConfigured(f"{name} has no {runtime} artifact; use CLASSIFIER_RUNTIME=keras")
        return Classifier(spec, runtime, LiteRTLogits(path(), litert_threads()))
    return Classifier(spec, runtime, keras_logits(spec.load_keras()))


@cache
def get_classifier():
    """The classifier chosen by settings.CLASSIFIER_MODEL and CLASSIFIER_RUNTIME, loaded once per process."""
    classifier = load_classifier(settings.CLASSIFIER_MODEL, settings.CLASSIFIER_RUNTIME)
    log.info("loaded %r", classifier)
    return classifier


def top_labels(probabilities, top_k):
    names = imagenet_labels()
    best = np.argsort(-probabilities, kind="stable")[:top_k]
    return tuple(Label(int(i), names[i][0], names[i][1], float(probabilities[i])) for i in best)


def top_labels_of(classifier, arrays, top_k):
    """The top-k labels of each model input, in one model call."""
    return [top_labels(row, top_k) for row in classifier.predict(np.stack(arrays))] if arrays else []
