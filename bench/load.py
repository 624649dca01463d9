"""Load test: N concurrent API clients upload M images each to the local stack, then wait.

Reports images accepted, done, failed and lost (lost must be 0), HTTP 5xx (must be 0),
request and per-image latency percentiles, and peak RSS of the web and worker processes.

    .venv/bin/python bench/load.py [--clients 8] [--images-per-client 125] [--per-request 25]

With --two-tenants, two users share the stack instead: user B uploads a few images to the warm,
idle system, then user A uploads a flood and, once it is under way, B uploads as many again;
it reports B's per-image latency (queued → done) both times, and how much of A's flood was
still waiting when B's last image was done.

    .venv/bin/python bench/load.py --two-tenants [--flood 2000] [--small 10]

Prints a table and writes bench/results/load.json (load-two-tenants.json). The suite runs the
first mode small (tests/bench/test_load.py).
"""
import argparse
import threading
import time
from collections import Counter

import numpy as np
from stack import (
    REFUSALS,
    REFUSED,
    Sampler,
    image_report,
    local_stack,
    photo_jpegs,
    publish,
    upload_all,
    wait_for_results,
)


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


def api_token(username):
    """A user of the running stack and an API token for them."""
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken

    user = get_user_model().objects.create_user(username)
    return user, ApiToken.objects.issue(user, "bench")[1]


def latencies_of(user, since=None):
    """Queued → done seconds of the user's images (queued after `since`), once all are final."""
    from classifier.models import Image as ImageRow

    rows = ImageRow.objects.filter(owner=user)
    if since is not None:
        rows = rows.filter(queued_at__gte=since)
    if rows.filter(status__in=["queued", "processing"]).exists():
        return None
    return [(done - queued).total_seconds() for queued, done in rows.values_list("queued_at", "finished_at")]


def wait_for(user, since, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := latencies_of(user, since)) is not None:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"{user}'s images were not done in {timeout} s")


def percentiles(values):
    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2),
            "max": round(max(values), 2)}


def run_two_tenants(flood, small, per_request=100, timeout=1800):
    files = list(photo_jpegs(flood + 3 * small, seed=6))
    warm_up, alone, beside, flood_files = (files[:small], files[small:2 * small], files[2 * small:3 * small],
                                           files[3 * small:])
    with local_stack() as (url, _, env):
        from django.utils import timezone  # Django is set up for the stack now

        from classifier.models import Image as ImageRow

        a, token_a = api_token("tenant-a")
        b, token_b = api_token("tenant-b")
        upload_all(url, token_b, warm_up, 1, small)  # the fleet starts from zero: have a node up first
        wait_for(b, None, timeout)
        started = timezone.now()
        upload_all(url, token_b, alone, 1, small)
        b_alone = wait_for(b, started, timeout)
        flood_statuses = []
        flooding = threading.Thread(target=lambda: flood_statuses.extend(
            upload_all(url, token_a, flood_files, 4, per_request)[0]))
        flooding.start()
        deadline = time.monotonic() + timeout
        while ImageRow.objects.filter(owner=a, status="done").count() < min(100, flood // 10):
            if time.monotonic() > deadline:
                raise TimeoutError("the flood never got under way")
            time.sleep(0.2)
        started = timezone.now()
        upload_all(url, token_b, beside, 1, small)
        b_beside = wait_for(b, started, timeout)
        a_waiting = ImageRow.objects.filter(owner=a).exclude(status__in=["done", "failed"]).count()
        flooding.join()
        a_accepted = ImageRow.objects.filter(owner=a).count()
    return {
        "flood_images": flood, "flood_accepted": a_accepted, "small_images": small,
        "b_alone_latency_s": percentiles(b_alone), "b_beside_flood_latency_s": percentiles(b_beside),
        "a_images_waiting_when_b_was_done": a_waiting,
        "flood_http_statuses": dict(Counter(flood_statuses)), "refused": dict(REFUSED), "refusals": REFUSALS,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--images-per-client", type=int, default=125)
    parser.add_argument("--per-request", type=int, default=25)
    parser.add_argument("--two-tenants", action="store_true", help="user B's latency beside user A's flood")
    parser.add_argument("--flood", type=int, default=2000)
    parser.add_argument("--small", type=int, default=10)
    args = parser.parse_args()
    if args.two_tenants:
        publish(run_two_tenants(args.flood, args.small), "load-two-tenants")
    else:
        publish(run_load(args.clients, args.images_per_client, args.per_request), "load")


if __name__ == "__main__":
    main()
