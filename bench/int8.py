"""The int8 LiteRT model against the float one: top-1/top-5 agreement on varied photos, and speed.

    .venv/bin/python bench/int8.py [--seconds 2] [--uint8-input]

Agreement: 18 photos (scikit-image's samples, both motorcycle views, matplotlib's Grace Hopper)
times 14 variants each (whole, mirrored, six seeded random crops, a quarter turn, grey, JPEG
quality 25, brighter with less contrast, darker, 96 px), 252 model inputs, through both
runtimes' predict(). Reported for all, for photos of objects and for textures/microscopy/sky,
for photos in the calibration set and not, and where the float model is confident (p >= 0.5).

Speed: images/s of predict() at batch 1 and 4, on one thread and on every core; the two
runtimes take turns call by call, so the machine's noise falls on both alike. --uint8-input
also converts a model with uint8 input (the pixels themselves: scale 1/128, zero point 127)
and times it against the float-input int8 model, both as bare interpreter calls.

Run `python manage.py build_model` first. Prints tables and writes bench/results/int8.json.
"""
import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "int8.json"
DEFAULT_THRESHOLD = 0.97  # the int8 runtime becomes the default only at this top-1 agreement
OBJECT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                 "grace_hopper", "camera", "coins", "clock")
OTHER_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "retina", "cell", "grass", "gravel", "brick", "moon")
RANDOM_CROPS = 6
CONFIDENT = 0.5
BATCH_SIZES = (1, 4)


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsite.settings")
    import django

    django.setup()


def source_photos():
    """Name -> RGB PIL image, for every photo the evaluation varies."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    photos = {}
    for name in OBJECT_PHOTOS + OTHER_PHOTOS:
        if name.startswith("motorcycle"):
            left, right, _ = data.stereo_motorcycle()
            photos["motorcycle_left"], photos["motorcycle_right"] = Image.fromarray(left), Image.fromarray(right)
        elif name == "grace_hopper":
            with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as hopper:
                photos[name] = hopper.convert("RGB")
        else:
            photos[name] = Image.fromarray(getattr(data, name)()).convert("RGB")
    return {name: photos[name] for name in OBJECT_PHOTOS + OTHER_PHOTOS}


def variants(image, rng):
    """(variant name, PIL image) pairs: the photo as uploads vary it."""
    from PIL import Image, ImageEnhance, ImageOps

    yield "whole", image
    yield "mirrored", ImageOps.mirror(image)
    width, height = image.size
    for number in range(RANDOM_CROPS):
        side, aspect = rng.uniform(0.3, 0.95) * min(width, height), rng.uniform(0.75, 1.33)
        crop_w, crop_h = min(width, side * aspect), min(height, side / aspect)
        left, top = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
        crop = image.crop((int(left), int(top), int(left + crop_w), int(top + crop_h)))
        yield f"crop{number}", ImageOps.mirror(crop) if rng.random() < 0.5 else crop
    yield "quarter_turn", image.transpose(Image.Transpose.ROTATE_90)
    yield "grey", image.convert("L").convert("RGB")
    output = io.BytesIO()
    image.save(output, "JPEG", quality=25)
    yield "jpeg_q25", Image.open(io.BytesIO(output.getvalue())).convert("RGB")
    yield "bright_flat", ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(1.3)).enhance(0.7)
    yield "dark", ImageEnhance.Brightness(image).enhance(0.5)
    small = image.copy()
    small.thumbnail((96, 96))
    yield "small_96px", small


def evaluation_set(preprocess):
    """Names, source photo names and an (N, 224, 224, 3) batch of model inputs."""
    rng = np.random.default_rng(2026)
    names, sources, inputs = [], [], []
    for source, image in source_photos().items():
        for variant, picture in variants(image, rng):
            names.append(f"{source}/{variant}")
            sources.append(source)
            inputs.append(preprocess(picture))
    return names, sources, np.stack(inputs)


def predict_all(classifier, inputs, batch=4):
    return np.concatenate([classifier.predict(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])


def agreement(float_p, int8_p):
    """Top-1 and top-5 agreement of int8 with float, over the rows given."""
    float_top5, int8_top5 = np.argsort(-float_p, axis=1)[:, :5], np.argsort(-int8_p, axis=1)[:, :5]
    float_top1, int8_top1 = float_top5[:, 0], int8_top5[:, 0]
    rows = np.arange(len(float_p))
    return {
        "n": len(float_p),
        "top1_agreement": float(np.mean(float_top1 == int8_top1)),
        "top5_overlap": float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(float_top5, int8_top5)])),
        "same_top5_set": float(np.mean([set(a) == set(b) for a, b in zip(float_top5, int8_top5)])),
        "float_top1_in_int8_top5": float(np.mean([a in b for a, b in zip(float_top1, int8_top5)])),
        "max_abs_dp": float(np.abs(float_p - int8_p).max()),
        "mean_abs_dp_float_top1": float(np.abs(float_p[rows, float_top1] - int8_p[rows, float_top1]).mean()),
    }


def compare(names, sources, float_p, int8_p):
    from classifier import efficientnet

    calibrated = {path.stem.rsplit("-", 1)[0] for path in efficientnet.calibration_files()}
    sources = np.array(sources)
    confident = float_p.max(axis=1) >= CONFIDENT
    groups = {
        "all": np.ones(len(names), bool),
        "photos of objects": np.isin(sources, OBJECT_PHOTOS),
        "textures, microscopy, sky": np.isin(sources, OTHER_PHOTOS),
        "in the calibration set": np.isin(sources, list(calibrated)),
        "not in the calibration set": ~np.isin(sources, list(calibrated)),
        f"float top-1 p >= {CONFIDENT}": confident,
    }
    rows = {group: agreement(float_p[mask], int8_p[mask]) for group, mask in groups.items()}
    float_top1, int8_top1 = float_p.argmax(axis=1), int8_p.argmax(axis=1)
    disagreements = [
        {"input": names[i], "float": int(float_top1[i]), "float_p": round(float(float_p[i, float_top1[i]]), 3),
         "int8": int(int8_top1[i]), "float_p_of_int8_top1": round(float(float_p[i, int8_top1[i]]), 3)}
        for i in np.flatnonzero(float_top1 != int8_top1)
    ]
    return rows, disagreements


def load_pair(threads):
    """The float and int8 LiteRT classifiers on `threads` inference threads."""
    from django.conf import settings

    from classifier.inference import load_classifier

    settings.CLASSIFIER_THREADS = threads
    return {runtime: load_classifier("efficientnet_lite0", runtime) for runtime in ("litert", "litert-int8")}


def time_in_turns(calls, seconds, warmup=3):
    """Median seconds per call of each named callable, calling them in turn until `seconds` pass."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    durations = {name: [] for name in calls}
    deadline = time.perf_counter() + seconds * len(calls)
    while time.perf_counter() < deadline or min(len(d) for d in durations.values()) < 5:
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            durations[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in durations.items()}


def speed(inputs, seconds):
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        classifiers = load_pair(threads)
        for batch_size in BATCH_SIZES:
            batch = inputs[:batch_size]
            calls = {runtime: (lambda c=c, b=batch: c.predict(b)) for runtime, c in classifiers.items()}
            medians = time_in_turns(calls, seconds)
            rates = {runtime: batch_size / median for runtime, median in medians.items()}
            rows.append({"threads": threads, "batch": batch_size, "float_images_per_s": rates["litert"],
                         "int8_images_per_s": rates["litert-int8"], "ratio": rates["litert-int8"] / rates["litert"]})
    return rows


def bare_interpreter(path, threads, batch_size):
    """An interpreter for the model at `path` sized for `batch_size`: (interpreter, input index, input
    dtype, output index)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    details = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(details["index"], [batch_size, *details["shape"][1:]])
    interpreter.allocate_tensors()
    return interpreter, details["index"], details["dtype"], interpreter.get_output_details()[0]["index"]


def uint8_input_speed(inputs, seconds):
    """The float-input int8 model against one whose input is the uint8 pixels, as bare calls."""
    import tensorflow as tf
    from django.conf import settings

    from classifier import efficientnet

    model = efficientnet.load_keras_model(settings.MODEL_DIR)
    flatbuffer = efficientnet.convert_to_int8_tflite(model, efficientnet.calibration_inputs(), input_type=tf.uint8)
    pixels = np.clip(np.round(inputs * 128 + 127), 0, 255).astype(np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        uint8_path = Path(scratch) / "uint8_input.tflite"
        uint8_path.write_bytes(flatbuffer)
        paths = {"float input": efficientnet.int8_tflite_path(settings.MODEL_DIR), "uint8 input": uint8_path}
        for threads in sorted({1, os.cpu_count() or 1}):
            for batch_size in BATCH_SIZES:
                calls = {}
                for name, path in paths.items():
                    interpreter, input_index, dtype, output_index = bare_interpreter(path, threads, batch_size)
                    batch = (pixels if dtype == np.uint8 else inputs)[:batch_size]

                    def call(interpreter=interpreter, input_index=input_index, output_index=output_index, batch=batch):
                        interpreter.set_tensor(input_index, batch)
                        interpreter.invoke()
                        return interpreter.get_tensor(output_index)
                    calls[name] = call
                medians = time_in_turns(calls, seconds)
                rates = {name: batch_size / median for name, median in medians.items()}
                rows.append({"threads": threads, "batch": batch_size, **{f"{k} images/s": v for k, v in rates.items()},
                             "ratio": rates["uint8 input"] / rates["float input"]})
    return rows


def print_tables(result):
    print(f"{'inputs':28} {'n':>4} {'top-1 agree':>11} {'top-5 overlap':>13} {'f1 in q5':>9} "
          f"{'max |dp|':>9} {'mean |dp| f1':>12}")
    for group, row in result["agreement"].items():
        print(f"{group:28} {row['n']:4d} {row['top1_agreement']:11.1%} {row['top5_overlap']:13.1%} "
              f"{row['float_top1_in_int8_top5']:9.1%} {row['max_abs_dp']:9.3f} {row['mean_abs_dp_float_top1']:12.4f}")
    print()
    print(f"{'threads':>7} {'batch':>5} {'float img/s':>11} {'int8 img/s':>10} {'int8/float':>10}")
    for row in result["speed"]:
        print(f"{row['threads']:7d} {row['batch']:5d} {row['float_images_per_s']:11.1f} "
              f"{row['int8_images_per_s']:10.1f} {row['ratio']:10.2f}")
    for row in result.get("uint8_input_speed", []):
        print(f"uint8 input, {row['threads']} thread(s), batch {row['batch']}: "
              f"{row['float input images/s']:.1f} -> {row['uint8 input images/s']:.1f} img/s (x{row['ratio']:.2f})")
    print()
    print(result["decision"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per runtime per configuration")
    parser.add_argument("--uint8-input", action="store_true", help="also time a uint8-input int8 model")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    from classifier import efficientnet

    classifiers = load_pair(0)
    names, sources, inputs = evaluation_set(efficientnet.preprocess)
    float_p, int8_p = (predict_all(classifiers[runtime], inputs) for runtime in ("litert", "litert-int8"))
    rows, disagreements = compare(names, sources, float_p, int8_p)
    del classifiers
    top1 = rows["all"]["top1_agreement"]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "model_bytes": {"float": efficientnet.tflite_path(settings.MODEL_DIR).stat().st_size,
                        "int8": efficientnet.int8_tflite_path(settings.MODEL_DIR).stat().st_size},
        "calibration_photos": len(efficientnet.calibration_files()),
        "agreement": rows,
        "disagreements": disagreements,
        "speed": speed(inputs, args.seconds),
        "default_threshold": DEFAULT_THRESHOLD,
        "decision": (f"top-1 agreement {top1:.1%} "
                     + (f">= {DEFAULT_THRESHOLD:.0%}: int8 may be the default" if top1 >= DEFAULT_THRESHOLD
                        else f"< {DEFAULT_THRESHOLD:.0%}: int8 stays opt-in (CLASSIFIER_RUNTIME=litert-int8)")),
    }
    if args.uint8_input:
        result["uint8_input_speed"] = uint8_input_speed(inputs, args.seconds)
    print_tables(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
