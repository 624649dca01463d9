"""End-to-end throughput on the local stack, against the raw model speed measured in the same run.

Starts `manage.py runlocal` (moto, gunicorn, the autoscaler from zero local workers) in a
scratch directory, uploads N photo JPEGs (~100 KB, cut from scikit-image's sample photos)
with concurrent clients, waits for every image to finish, and reports:
first POST → last result, images/s, p50/p95 per-image latency (queued → finished), peak RSS
of the web and worker processes, and the ratio of end-to-end to raw model throughput.

    .venv/bin/python bench/pipeline.py [--images 1000] [--clients 4] [--per-request 50]
        [--runtime litert|keras] [--workers 2]

Prints a table and writes bench/results/pipeline.json.
"""
import argparse
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from imgsite.local import free_port  # noqa: E402

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo_jpegs(count, seed=0):
    """Distinct ~100 KB JPEGs: random crops of real photos, resized to about 640×480."""
    from skimage import data

    sources = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    rng = random.Random(seed)
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = source.size
        crop_w, crop_h = int(width * rng.uniform(0.7, 1.0)), int(height * rng.uniform(0.7, 1.0))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        picture = source.crop((left, top, left + crop_w, top + crop_h)).resize((640, 480), Image.BICUBIC)
        output = io.BytesIO()
        picture.save(output, "JPEG", quality=88)
        yield f"photo-{index:04d}.jpg", output.getvalue()


def raw_model_throughput(env, batch=32, seconds=10.0):
    """images/s of classify_batch on decoded 224-ready photos, in a fresh process like a worker's."""
    code = f"""
import io, json, time, django
django.setup()
from PIL import Image
from classifier.inference import classify_batch, get_classifier
from bench.pipeline import photo_jpegs
pictures = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in photo_jpegs({batch}, seed=1)]
get_classifier(); classify_batch(pictures)
done, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    classify_batch(pictures); done += len(pictures)
print(json.dumps({{"images_per_second": done / (time.perf_counter() - start)}}))
"""
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["images_per_second"]


def start_system(env, port):
    process = subprocess.Popen([sys.executable, "manage.py", "runlocal", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in process.stdout:
        if match := re.search(r"running at (\S+)\s+\(log in as (\S+) / (\S+)\)", line):
            return process, match.group(1), match.group(2), match.group(3)
    raise RuntimeError("runlocal exited before it was ready")


def logged_in_session(url, username, password):
    session = requests.Session()
    page = session.get(url + "accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    session.post(url + "accounts/login/", data={"username": username, "password": password,
                                                "csrfmiddlewaretoken": token}, headers={"Referer": url})
    return session


def upload_all(url, username, password, files, clients, per_request):
    """Each client logs in and posts its share of the files in requests of `per_request` files."""
    chunks = [files[i:i + per_request] for i in range(0, len(files), per_request)]
    statuses = []

    def client(share):
        session = logged_in_session(url, username, password)
        for chunk in share:
            token = session.cookies.get("csrftoken")
            response = session.post(url + "upload/", data={"csrfmiddlewaretoken": token},
                                    files=[("files", (name, data, "image/jpeg")) for name, data in chunk],
                                    headers={"Referer": url}, allow_redirects=False)
            statuses.append(response.status_code)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, [chunks[i::clients] for i in range(clients)]))
    return statuses


class RssSampler:
    """Peak RSS (VmHWM) per process of the web tier and of the worker fleet."""

    def __init__(self, var_dir):
        self.var_dir = var_dir
        self.peak = {"web": 0, "workers": 0, "worker_max": 0}

    def sample(self):
        web = [pid for pid, cmd in processes() if "gunicorn" in cmd]
        workers = [pid for pid, cmd in processes() if "celery" in cmd and str(self.var_dir) in environ(pid)]
        hwm_web = sum(vm(pid, "VmHWM") for pid in web)
        hwm_workers = [vm(pid, "VmHWM") for pid in workers]
        self.peak["web"] = max(self.peak["web"], hwm_web)
        self.peak["workers"] = max(self.peak["workers"], sum(hwm_workers))
        self.peak["worker_max"] = max([self.peak["worker_max"], *hwm_workers])


def processes():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue


def environ(pid):
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def vm(pid, field):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def wait_for_results(count, sampler, timeout):
    from classifier.models import Image as ImageRow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sampler.sample()
        finished = ImageRow.objects.filter(status__in=["done", "failed"]).count()
        if finished >= count:
            return
        time.sleep(0.5)
    raise TimeoutError(f"only {finished} of {count} images finished")


def latency_report(first_post):
    from classifier.models import Image as ImageRow

    rows = list(ImageRow.objects.values_list("status", "queued_at", "finished_at"))
    latencies = np.array([(finished - queued).total_seconds() for _, queued, finished in rows])
    last = max(finished for _, _, finished in rows).timestamp()
    return {
        "done": sum(status == "done" for status, _, _ in rows),
        "failed": sum(status == "failed" for status, _, _ in rows),
        "seconds": last - first_post,
        "latency_p50": float(np.percentile(latencies, 50)),
        "latency_p95": float(np.percentile(latencies, 95)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-request", type=int, default=50)
    parser.add_argument("--runtime", default=os.environ.get("CLASSIFIER_RUNTIME", "litert"))
    parser.add_argument("--workers", type=int, default=2, help="the autoscaler's max local workers")
    parser.add_argument("--threads", type=int, default=1, help="inference threads per worker")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="imgsite-bench-"))
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="imgsite.settings", VAR_DIR=str(var_dir), MODEL_DIR=str(ROOT / "var/models"),
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", CLASSIFIER_RUNTIME=args.runtime, AUTOSCALE_MAX_NODES=str(args.workers),
               CLASSIFIER_THREADS=str(args.threads), MAX_FILES_PER_REQUEST=str(max(args.per_request, 100)),
               PYTHONPATH=str(ROOT))
    raw_single = raw_model_throughput({**env, "CLASSIFIER_THREADS": str(os.cpu_count())})
    files = list(photo_jpegs(args.images))
    mean_kb = sum(len(data) for _, data in files) / len(files) / 1024
    process, url, username, password = start_system(env, free_port())
    os.environ.update(env)
    import django

    django.setup()
    sampler = RssSampler(var_dir)
    try:
        first_post = time.time()
        statuses = upload_all(url, username, password, files, args.clients, args.per_request)
        upload_seconds = time.time() - first_post
        wait_for_results(args.images, sampler, timeout=1800)
        report = latency_report(first_post)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=300)
    result = {
        "images": args.images, "clients": args.clients, "per_request": args.per_request, "runtime": args.runtime,
        "workers": args.workers, "threads_per_worker": args.threads, "mean_jpeg_kb": round(mean_kb, 1),
        "http_5xx": sum(status >= 500 for status in statuses), "upload_seconds": round(upload_seconds, 2),
        **{key: round(value, 3) if isinstance(value, float) else value for key, value in report.items()},
        "images_per_second": round(args.images / report["seconds"], 2),
        "raw_model_images_per_second": round(raw_single, 2),
        "peak_rss_web_mb": sampler.peak["web"], "peak_rss_workers_mb": sampler.peak["workers"],
        "peak_rss_one_worker_mb": sampler.peak["worker_max"],
    }
    result["ratio_to_raw"] = round(result["images_per_second"] / raw_single, 3)
    print_table(result)
    out = ROOT / "bench/results/pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


def print_table(result):
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
