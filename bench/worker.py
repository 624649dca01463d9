"""Inside a busy worker: one local worker draining a full queue, against the raw model on the
same number of inference threads, measured in the same run.

Starts moto, provisions a scratch stack, accepts N photo JPEGs as the API does (stored in S3
through django-storages, queued IMAGES_PER_MESSAGE per message) before any worker runs, then
starts one worker exactly as the local fleet does and waits for every image. Reports, over the
steady state (the middle 80 % of finish times), the worker's images/s and CPU milliseconds per
image and moto's; the worker's peak RSS; and the ratios to the raw model with CLASSIFIER_THREADS threads:
the model alone on ready tensors, and with preprocessing from decoded photos.

    .venv/bin/python bench/worker.py [--images 400] [--threads 1] [--profile STACKS.txt]

With --profile (needs py-spy: `pip install py-spy`), the worker is sampled while it drains the
queue and its collapsed stacks are written to STACKS.txt; bench/profile_summary.py sums them.

Prints a table and writes bench/results/worker.json.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stack import cpu_seconds, photo_jpegs, proc_field, publish, raw_model_throughput, stack_env, use_env


def fill_queue(count):
    """A user's batch of `count` photos, accepted (stored and queued) as an API upload is."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from classifier.upload import accept_uploads

    user = get_user_model().objects.create_user("bench")
    files = [SimpleUploadedFile(name, data, "image/jpeg") for name, data in photo_jpegs(count)]
    for start in range(0, count, 100):
        accept_uploads(user, files[start:start + 100])


def steady_window(finished):
    """The middle 80 % of the finish times (start-up and the tail left out): (start, end, images)."""
    times = np.sort(np.array([moment.timestamp() for moment in finished]))
    low, high = int(len(times) * 0.1), int(len(times) * 0.9)
    return times[low], times[high], high - low


def cpu_between(samples, start, end, key):
    """CPU seconds of `key` between two moments, from the (time, {key: cpu seconds}) samples."""
    def at(moment):
        return next((cpu[key] for when, cpu in samples if when >= moment), samples[-1][1][key])
    return at(end) - at(start)


def profile(pid, path):
    """py-spy sampling the worker's threads (native frames too) until it exits."""
    beside = Path(sys.executable).parent / "py-spy"
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if not spy:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--output", path,
                             "--rate", "200", "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="the worker's CLASSIFIER_THREADS")
    parser.add_argument("--profile", help="sample the worker with py-spy into this collapsed-stacks file")
    args = parser.parse_args()

    env = stack_env(tempfile.mkdtemp(prefix="imgsite-bench-worker-"), CLASSIFIER_THREADS=args.threads)
    raw = raw_model_throughput(env)
    use_env(env)
    from django.conf import settings
    from django.core.management import call_command

    from classifier.models import Image
    from deploy.local import start_moto
    from deploy.provision import provision
    from imgsite.processes import stop_process
    from scaling.fleets.local import start_worker

    moto = start_moto(settings.AWS_ENDPOINT_URL)
    worker = profiler = None
    try:
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)  # uploads charge quotas, which read the cache
        list(provision())
        fill_queue(args.images)
        started = time.time()
        worker = start_worker("bench-1", log_path=settings.VAR_DIR / "worker.log")
        profiler = profile(worker.pid, args.profile) if args.profile else None
        peak_rss, samples = 0, []
        while Image.objects.filter(status__in=["queued", "processing"]).exists():
            peak_rss = max(peak_rss, proc_field(worker.pid, "status", "VmHWM"))
            samples.append((time.time(), {"worker": cpu_seconds(worker.pid),
                                          "moto": cpu_seconds(moto.pid, children=True)}))
            if worker.poll() is not None or time.time() - started > 900:
                raise RuntimeError(f"the worker stopped or stalled; see {settings.VAR_DIR / 'worker.log'}")
            time.sleep(0.1)
        finished = list(Image.objects.filter(status="done").values_list("finished_at", flat=True))
        failed = Image.objects.filter(status="failed").count()
    finally:
        if worker:
            stop_process(worker)
        stop_process(moto)
        if args.profile and profiler:
            profiler.wait(timeout=60)
    start, end, images = steady_window(finished)
    rate = images / (end - start)
    result = {
        "images": args.images, "images_per_message": settings.IMAGES_PER_MESSAGE, "threads": args.threads,
        "cores": os.cpu_count(), "done": len(finished), "failed": failed,
        "worker_images_per_second": round(rate, 2),
        "raw_model_alone_images_per_second": round(raw["model_alone"], 2),
        "raw_with_preprocessing_images_per_second": round(raw["with_preprocessing"], 2),
        "ratio_to_model_alone": round(rate / raw["model_alone"], 3),
        "ratio_to_model_with_preprocessing": round(rate / raw["with_preprocessing"], 3),
        "worker_cpu_ms_per_image": round(1000 * cpu_between(samples, start, end, "worker") / images, 1),
        "moto_cpu_ms_per_image": round(1000 * cpu_between(samples, start, end, "moto") / images, 1),
        "worker_peak_rss_mb": peak_rss,
    }
    publish(result, "worker")


if __name__ == "__main__":
    main()
