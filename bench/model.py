"""Benchmark the classifier: load time, memory and images/s for the Keras and LiteRT runtimes.

    python bench/model.py [--model efficientnet_lite0] [--seconds 3]

Each runtime runs in a fresh child process, so load time includes its imports
and the RSS figures are that runtime's alone. Prints a table and writes
bench/results/model.json. Run `python manage.py build_model` first.
"""
import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "model.json"
RUNTIMES = ("keras", "litert")
BATCH_SIZES = (1, 4, 8, 32)
WARMUP_CALLS = 3


def memory_kib():
    """VmRSS and VmHWM (peak) of this process, in KiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def time_calls(call, seconds, min_calls=5):
    """Seconds per call, after warm-up: keep calling until `seconds` have passed."""
    for _ in range(WARMUP_CALLS):
        call()
    durations = []
    deadline = time.perf_counter() + seconds
    while len(durations) < min_calls or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


def sample_jpegs(count):
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.chelsea())
    jpegs = []
    for number in range(count):
        output = io.BytesIO()
        photo.rotate(number).save(output, format="JPEG", quality=90)
        jpegs.append(output.getvalue())
    return jpegs


def measure_runtime(model, runtime, seconds):
    """Runs in the child process: load, then time predict() per batch size and the pipeline end to end."""
    import django
    import numpy as np

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsite.settings")
    django.setup()
    from classifier.inference import load_classifier
    from classifier.pipeline import classify

    started = time.perf_counter()
    classifier = load_classifier(model, runtime)
    load_seconds = time.perf_counter() - started
    memory_after_load = memory_kib()
    rng = np.random.default_rng(0)
    size = classifier.input_size
    rows = []
    for batch_size in BATCH_SIZES:
        batch = rng.standard_normal((batch_size, size, size, 3)).astype(np.float32)
        durations = time_calls(lambda batch=batch: classifier.predict(batch), seconds)
        median = statistics.median(durations)
        rows.append({"batch": batch_size, "calls": len(durations), "median_ms": median * 1000,
                     "images_per_s": batch_size / median})
    jpegs = sample_jpegs(32)
    durations = time_calls(lambda: list(classify(jpegs, lambda data: data, classifier=classifier)), seconds,
                           min_calls=3)
    return {
        "runtime": runtime,
        "model": model,
        "load_seconds": load_seconds,
        "rss_mib_after_load": memory_after_load["VmRSS"] / 1024,
        "hwm_mib_after_load": memory_after_load["VmHWM"] / 1024,
        "hwm_mib_at_end": memory_kib()["VmHWM"] / 1024,
        "tensorflow_imported": "tensorflow" in sys.modules,
        "predict": rows,
        "end_to_end_32_jpegs_images_per_s": 32 / statistics.median(durations),
    }


def run_child(model, runtime, seconds):
    command = [sys.executable, __file__, "--child", runtime, "--model", model, "--seconds", str(seconds)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    if completed.returncode:
        sys.exit(f"{runtime} benchmark failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def print_table(results):
    print(f"{'runtime':8} {'load s':>7} {'RSS MiB':>8} {'peak MiB':>9} {'TF?':>4}  "
          + "  ".join(f"{f'b={size} img/s':>11}" for size in BATCH_SIZES) + f"  {'e2e img/s':>10}")
    for result in results:
        speeds = "  ".join(f"{row['images_per_s']:11.1f}" for row in result["predict"])
        print(f"{result['runtime']:8} {result['load_seconds']:7.2f} {result['rss_mib_after_load']:8.0f} "
              f"{result['hwm_mib_at_end']:9.0f} {'yes' if result['tensorflow_imported'] else 'no':>4}  "
              f"{speeds}  {result['end_to_end_32_jpegs_images_per_s']:10.1f}")
    keras, litert = ({row["batch"]: row["images_per_s"] for row in r["predict"]} for r in results)
    print("LiteRT / Keras speed: " + ", ".join(f"b={size} {litert[size] / keras[size]:.2f}x" for size in BATCH_SIZES))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_runtime(args.model, args.child, args.seconds)))
        return
    results = [run_child(args.model, runtime, args.seconds) for runtime in RUNTIMES]
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()},
              "results": results}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
