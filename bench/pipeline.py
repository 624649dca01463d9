"""End-to-end throughput on the local stack, against the raw model speed measured in the same run.

Measures the raw model first (classify_batch on decoded photos, in a fresh process like a
worker's, with every core), then starts the local system (`manage.py runlocal`: moto,
gunicorn, the autoscaler from zero local workers), uploads N photo JPEGs (~100 KB) through
the API with concurrent clients, waits for every image, and reports the time from the first
POST to the last result, images/s, p50/p95 per-image latency, peak RSS of the web tier and the
workers, and the ratio of end-to-end to raw throughput.

    .venv/bin/python bench/pipeline.py [--images 1000] [--clients 4] [--per-request 50]
        [--runtime litert|keras] [--workers 2]

Prints a table and writes bench/results/pipeline.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from stack import (
    ROOT,
    RssSampler,
    image_report,
    local_stack,
    photo_jpegs,
    publish,
    stack_env,
    upload_all,
    wait_for_results,
)

RAW_MODEL = """
import io, json, time, django
django.setup()
from PIL import Image
from classifier.inference import classify_batch, get_classifier
from bench.stack import photo_jpegs
pictures = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in photo_jpegs({batch}, seed=1)]
print("runtime:", get_classifier())
classify_batch(pictures)
done, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    classify_batch(pictures)
    done += len(pictures)
print(json.dumps({{"images_per_second": done / (time.perf_counter() - start)}}))
"""


def raw_model_throughput(env, batch=32, seconds=15.0):
    """Images/s of the model alone on decoded photos (preprocessing included), every core."""
    output = subprocess.run([sys.executable, "-c", RAW_MODEL.format(batch=batch, seconds=seconds)], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["images_per_second"]


def warm_single_image_latency(url, token, count=20):
    """Per-image latency (queued → finished) of single-image uploads sent one at a time to
    the warm, idle workers that just finished the main run."""
    from classifier.models import Image as ImageRow

    latencies = []
    for name, data in photo_jpegs(count, seed=3):
        _, _, accepted = upload_all(url, token, [(f"single-{name}", data)], clients=1, per_request=1)
        deadline = time.monotonic() + 30
        while accepted and time.monotonic() < deadline:
            row = ImageRow.objects.filter(original_name=f"single-{name}", finished_at__isnull=False).first()
            if row:
                latencies.append((row.finished_at - row.queued_at).total_seconds())
                break
            time.sleep(0.02)
    return sorted(latencies)[len(latencies) // 2] if latencies else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-request", type=int, default=50)
    parser.add_argument("--runtime", default="litert")
    parser.add_argument("--workers", type=int, default=2, help="the autoscaler's max local workers")
    args = parser.parse_args()

    settings = dict(CLASSIFIER_RUNTIME=args.runtime, AUTOSCALE_MAX_NODES=args.workers)
    raw = raw_model_throughput(stack_env("/tmp/imgsite-bench-raw", CLASSIFIER_THREADS=os.cpu_count(), **settings))
    files = list(photo_jpegs(args.images))
    with local_stack(**settings) as (url, token, env):
        sampler = RssSampler(env["VAR_DIR"])
        first_post = time.time()
        statuses, _, accepted = upload_all(url, token, files, args.clients, args.per_request)
        upload_seconds = time.time() - first_post
        wait_for_results(accepted, sampler, timeout=1800)
        report = image_report(first_post)
        warm_p50 = warm_single_image_latency(url, token)
    result = {
        "images": args.images, "clients": args.clients, "per_request": args.per_request, "runtime": args.runtime,
        "max_workers": args.workers, "cores": os.cpu_count(),
        "mean_jpeg_kb": round(sum(len(data) for _, data in files) / len(files) / 1024, 1),
        "accepted": accepted, "http_5xx": sum(status >= 500 for status in statuses),
        "upload_seconds": round(upload_seconds, 2), **report,
        "images_per_second": round(report["done"] / report["seconds"], 2),
        "raw_model_images_per_second": round(raw, 2),
        "peak_rss_web_mb": sampler.peak["web"], "peak_rss_workers_mb": sampler.peak["workers"],
        "peak_rss_one_worker_mb": sampler.peak["one_worker"],
        "warm_single_image_p50_s": warm_p50,
    }
    result["ratio_to_raw"] = round(result["images_per_second"] / raw, 3)
    publish(result, "pipeline")


if __name__ == "__main__":
    main()
