"""End-to-end throughput on the local stack, against the raw model speed measured in the same run.

Measures the raw model first, in a fresh process like a worker's with every core: the model
alone on ready tensors, and the worker's pipeline on JPEGs in memory (decoding and preprocessing). Then it
starts the local system (`manage.py runlocal`: moto, gunicorn, the autoscaler from zero local
workers), uploads N photo JPEGs (~100 KB) through the API with concurrent clients, waits for
every image, and reports the time from the first POST to the last result, images/s, p50/p95
per-image latency, peak RSS of the web tier and the workers, the CPU seconds of each part of
the system, the ratios of end-to-end to raw throughput, and then the latency of single images
sent one at a time to the warm workers (p50/p95 of 50).

    .venv/bin/python bench/pipeline.py [--images 1000] [--clients 4] [--per-request 50]
        [--runtime litert|keras] [--workers 2] [--path presigned|multipart]

Images go straight to storage by default (--path presigned: start, POST to S3, commit), as the
gallery sends them; --path multipart posts them through the web tier instead.

Prints a table and writes bench/results/pipeline.json.
"""
import argparse
import os
import time

import numpy as np
from stack import (
    UPLOAD_PATHS,
    Sampler,
    image_report,
    local_stack,
    photo_jpegs,
    publish,
    raw_model_throughput,
    stack_env,
    upload_all,
    wait_for_results,
)


def warm_single_image_latency(url, token, path, count=50):
    """p50 and p95 of the latency (queued → finished) of single-image uploads sent one at a time
    to the warm, idle workers that just finished the main run."""
    from classifier.models import Image as ImageRow

    latencies = []
    for name, data in photo_jpegs(count, seed=3):
        _, _, accepted = upload_all(url, token, [(f"single-{name}", data)], clients=1, per_request=1, path=path)
        deadline = time.monotonic() + 30
        while accepted and time.monotonic() < deadline:
            row = ImageRow.objects.filter(original_name=f"single-{name}", finished_at__isnull=False).first()
            if row:
                latencies.append((row.finished_at - row.queued_at).total_seconds())
                break
            time.sleep(0.02)
    if not latencies:
        return None, None
    return round(float(np.percentile(latencies, 50)), 3), round(float(np.percentile(latencies, 95)), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-request", type=int, default=50)
    parser.add_argument("--runtime", default="litert")
    parser.add_argument("--workers", type=int, default=2, help="the autoscaler's max local workers")
    parser.add_argument("--path", choices=sorted(UPLOAD_PATHS), default="presigned",
                        help="how images are uploaded: straight to storage as the gallery does, or multipart "
                             "through the web tier")
    args = parser.parse_args()

    settings = dict(CLASSIFIER_RUNTIME=args.runtime, AUTOSCALE_MAX_NODES=args.workers)
    raw = raw_model_throughput(stack_env("/tmp/imgsite-bench-raw", CLASSIFIER_THREADS=os.cpu_count(), **settings))
    raw, raw_model_alone = raw["with_preprocessing"], raw["model_alone"]
    files = list(photo_jpegs(args.images))
    with local_stack(**settings) as (url, token, env):
        sampler = Sampler(env["VAR_DIR"])
        sampler.sample()
        first_post = time.time()
        statuses, _, accepted = upload_all(url, token, files, args.clients, args.per_request, args.path)
        upload_seconds = time.time() - first_post
        wait_for_results(accepted, sampler, timeout=1800)
        cpu = sampler.cpu_by_role()
        report = image_report(first_post)
        warm_p50, warm_p95 = warm_single_image_latency(url, token, args.path)
    result = {
        "images": args.images, "path": args.path, "clients": args.clients, "per_request": args.per_request,
        "runtime": args.runtime,
        "max_workers": args.workers, "cores": os.cpu_count(),
        "mean_jpeg_kb": round(sum(len(data) for _, data in files) / len(files) / 1024, 1),
        "accepted": accepted, "http_5xx": sum(status >= 500 for status in statuses),
        "upload_seconds": round(upload_seconds, 2), **report,
        "images_per_second": round(report["done"] / report["seconds"], 2),
        "raw_model_images_per_second": round(raw, 2),
        "raw_model_alone_images_per_second": round(raw_model_alone, 2),
        "peak_rss_web_mb": sampler.peak["web"], "peak_rss_workers_mb": sampler.peak["workers"],
        "peak_rss_one_worker_mb": sampler.peak["one_worker"],
        "warm_single_image_p50_s": warm_p50, "warm_single_image_p95_s": warm_p95,
        "cpu_seconds": cpu,
    }
    result["web_cpu_ms_per_image"] = round(1000 * cpu.get("web", 0) / max(1, accepted), 2)
    result["ratio_to_raw"] = round(result["images_per_second"] / raw, 3)
    result["ratio_to_raw_model_alone"] = round(result["images_per_second"] / raw_model_alone, 3)
    publish(result, "pipeline")


if __name__ == "__main__":
    main()
