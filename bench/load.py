"""Load test: N concurrent API clients upload M images each to the local stack, then wait.

Reports images accepted, done, failed and lost (lost must be 0), HTTP 5xx (must be 0),
request and per-image latency percentiles, and peak RSS of the web and worker processes.

    .venv/bin/python bench/load.py [--clients 8] [--images-per-client 125] [--per-request 25]

Prints a table and writes bench/results/load.json. The suite runs it small
(tests/bench/test_load.py).
"""
import argparse
import time

import numpy as np
from stack import Sampler, image_report, local_stack, photo_jpegs, publish, upload_all, wait_for_results


def run_load(clients, images_per_client, per_request, timeout=1800, **settings):
    files = list(photo_jpegs(clients * images_per_client, seed=2))
    with local_stack(**settings) as (url, token, env):
        sampler = Sampler(env["VAR_DIR"])
        first_post = time.time()
        statuses, seconds, accepted = upload_all(url, token, files, clients, per_request)
        finished_in_time = wait_for_results(accepted, sampler, timeout)
        report = image_report(first_post)
    return {
        "clients": clients, "images_per_client": images_per_client, "per_request": per_request,
        "sent": len(files), "accepted": accepted, "refused": len(files) - accepted,
        **{key: report[key] for key in ("done", "failed", "lost")},
        "finished_in_time": finished_in_time,
        "http_5xx": sum(status >= 500 for status in statuses),
        "http_other_errors": sum(400 <= status < 500 for status in statuses),
        "request_p50_s": round(float(np.percentile(seconds, 50)), 3),
        "request_p95_s": round(float(np.percentile(seconds, 95)), 3),
        "image_latency_p50_s": report["latency_p50"], "image_latency_p95_s": report["latency_p95"],
        "first_post_to_last_result_s": round(report["seconds"], 2),
        "peak_rss_web_mb": sampler.peak["web"], "peak_rss_workers_mb": sampler.peak["workers"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--images-per-client", type=int, default=125)
    parser.add_argument("--per-request", type=int, default=25)
    args = parser.parse_args()
    result = run_load(args.clients, args.images_per_client, args.per_request)
    publish(result, "load")


if __name__ == "__main__":
    main()
