"""Shared by the benchmarks: the local system in a scratch directory, API clients, measurements."""
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from imgsite.processes import free_port, stop_process  # noqa: E402

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo_jpegs(count, seed=0, size=(800, 600)):
    """Distinct JPEGs of about 100 KB: random crops of scikit-image's sample photos."""
    from skimage import data

    sources = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    rng = random.Random(seed)
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = source.size
        crop_w, crop_h = int(width * rng.uniform(0.7, 1.0)), int(height * rng.uniform(0.7, 1.0))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        picture = source.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.BICUBIC)
        output = io.BytesIO()
        picture.save(output, "JPEG", quality=85)
        yield f"photo-{index:04d}.jpg", output.getvalue()


RAW_MODEL = """
import io, json, time, django
import numpy as np
django.setup()
from PIL import Image
from classifier.inference import MAX_BATCH, get_classifier
from classifier.pipeline import classify
from bench.stack import photo_jpegs
jpegs = [data for _, data in photo_jpegs({batch}, seed=1)]
classifier = get_classifier()
tensors = np.stack([classifier.preprocess(Image.open(io.BytesIO(data)).convert("RGB")) for data in jpegs[:MAX_BATCH]])

def run_pipeline():
    for _ in classify(jpegs, lambda data: data, classifier=classifier):
        pass

def rate(call, images):
    call()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < {seconds}:
        call()
        done += images
    return done / (time.perf_counter() - start)

print(json.dumps({{"with_preprocessing": rate(run_pipeline, len(jpegs)),
                  "model_alone": rate(lambda: classifier.predict(tensors), len(tensors))}}))
"""


def raw_model_throughput(env, batch=32, seconds=10.0):
    """Images/s of the model alone on the worker's batches of ready tensors, and of the worker's
    pipeline on JPEG bytes in memory (decoding and preprocessing included, no S3, no database),
    in a fresh process like a worker's, with env's CLASSIFIER_THREADS."""
    output = subprocess.run([sys.executable, "-c", RAW_MODEL.format(batch=batch, seconds=seconds)], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def stack_env(var_dir, **overrides):
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="imgsite.settings", VAR_DIR=str(var_dir), MODEL_DIR=str(ROOT / "var/models"),
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", PYTHONPATH=str(ROOT), API_RATE_LIMIT="100000/min", DEBUG="true")
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@contextmanager
def local_stack(**overrides):
    """`manage.py runlocal` (moto, gunicorn, the autoscaler from zero workers) with its own
    state; yields (url, api_token, env) and stops it all on exit."""
    var_dir = Path(tempfile.mkdtemp(prefix="imgsite-bench-"))
    env = stack_env(var_dir, **overrides)
    process = subprocess.Popen([sys.executable, "manage.py", "runlocal", "--port", str(free_port())], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        url, username = wait_for_banner(process)
        token = subprocess.run([sys.executable, "manage.py", "create_api_token", username], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        use_env(env)  # this process reads the stack's database, not the caller's
        yield url, token, env
    finally:
        stop_process(process, timeout=300)


def use_env(env):
    """Make `env` this process's whole environment, then set Django up with it."""
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()


def wait_for_banner(process):
    seen = []
    for line in process.stdout:
        seen.append(line)
        if match := re.search(r"running at (\S+)\s+\(log in as (\S+) / \S+\)", line):
            return match.group(1), match.group(2)
    raise RuntimeError("runlocal exited before it was ready:\n" + "".join(seen[-20:]))


def upload_multipart(session, url, chunk, statuses):
    """One multipart POST /api/v1/batches of `chunk`, through the web tier; returns the accepted count."""
    response = session.post(url + "api/v1/batches",
                            files=[("images", (name, data, "image/jpeg")) for name, data in chunk])
    statuses.append(response.status_code)
    count_refusals(response)
    return len(response.json()["images"]) if response.status_code == 201 else 0


def upload_presigned(session, url, chunk, statuses):
    """What the gallery does: start (names and sizes), POST each file straight to storage, commit
    the keys that arrived; the web tier never carries the bytes. Returns the accepted count."""
    started = session.post(url + "api/v1/batches/uploads",
                           json={"files": [{"name": name, "size": len(data)} for name, data in chunk]})
    statuses.append(started.status_code)
    count_refusals(started)
    if started.status_code != 201:
        return 0
    body, keys = started.json(), []
    for slot in body["files"]:
        stored = requests.post(slot["post"]["url"], data=slot["post"]["fields"],
                               files={"file": ("blob", chunk[slot["index"]][1])}, timeout=60)
        statuses.append(stored.status_code)
        if stored.status_code < 300:
            keys.append(slot["key"])
    committed = session.post(body["commit_url"], json={"upload": body["upload"], "keys": keys})
    statuses.append(committed.status_code)
    count_refusals(committed)
    return len(committed.json()["images"]) if committed.status_code == 201 else 0


UPLOAD_PATHS = {"presigned": upload_presigned, "multipart": upload_multipart}
# Why files were refused, over every upload this process made: {error_code: count}.
REFUSED = Counter()


# The first few refusals, as the API said them.
REFUSALS = []


def count_refusals(response):
    if response.headers.get("Content-Type", "").startswith("application/json"):
        refused = response.json().get("refused", [])
        REFUSED.update(refusal.get("error_code", "") for refusal in refused)
        REFUSALS.extend(refused[:max(0, 10 - len(REFUSALS))])


def upload_all(url, token, files, clients, per_request, path="presigned"):
    """`clients` threads upload their share of `files`, `per_request` files at a time, by `path`
    (UPLOAD_PATHS). Returns (HTTP statuses, seconds per upload, accepted count)."""
    chunks = [files[i:i + per_request] for i in range(0, len(files), per_request)]
    statuses, seconds, accepted = [], [], []

    def client(share):
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        for chunk in share:
            start = time.perf_counter()
            accepted.append(UPLOAD_PATHS[path](session, url, chunk, statuses))
            seconds.append(time.perf_counter() - start)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, [chunks[i::clients] for i in range(clients)]))
    return statuses, seconds, sum(accepted)


def processes():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue


def proc_field(pid, name, field):
    try:
        text = Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")
    except OSError:
        return "" if field is None else 0
    if field is None:
        return text
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def role(cmd):
    """Which part of the local system a command line is."""
    for needle, name in (("moto_app", "moto"), ("gunicorn", "web"), ("celery", "workers"),
                         ("autoscale", "autoscaler"), ("runlocal", "autoscaler")):
        if needle in cmd:
            return name
    return "other"


def cpu_seconds(pid, children=False):
    """User + system CPU seconds of a process so far (0 once it is gone); with `children`, its
    live child processes' too (gunicorn's workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if children else []
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(kid) for kid in kids)


class Sampler:
    """Peak RSS (VmHWM, MB) of the web tier (all gunicorn processes) and the worker fleet, and
    the CPU seconds each part of the system used (processes that exited keep their last sample)."""

    def __init__(self, var_dir):
        self.var_dir = str(var_dir)
        self.peak = {"web": 0, "workers": 0, "one_worker": 0}
        self.cpu = {}  # pid -> (role, seconds at the last sample)
        self.cpu_start = {}
        self.client_start = sum(os.times()[:2])

    def cpu_by_role(self):
        """CPU seconds per part since the sampler started, the benchmark client included."""
        totals = {"client": round(sum(os.times()[:2]) - self.client_start, 1)}
        for pid, (name, seconds) in self.cpu.items():
            totals[name] = round(totals.get(name, 0.0) + seconds - self.cpu_start.get(pid, 0.0), 1)
        return totals

    def sample(self):
        ours = [(pid, role(cmd)) for pid, cmd in processes() if self.var_dir in proc_field(pid, "environ", None)]
        first = not self.cpu
        rss = {"web": [], "workers": []}
        for pid, name in ours:
            seconds = cpu_seconds(pid)
            if seconds:
                self.cpu_start.setdefault(pid, seconds if first else 0.0)
                self.cpu[pid] = (name, seconds)
            if name in rss:
                rss[name].append(proc_field(pid, "status", "VmHWM"))
        self.peak["web"] = max(self.peak["web"], sum(rss["web"]))
        self.peak["workers"] = max(self.peak["workers"], sum(rss["workers"]))
        self.peak["one_worker"] = max([self.peak["one_worker"], *rss["workers"]])


def wait_for_results(expected, sampler, timeout):
    from classifier.models import Image as ImageRow

    deadline = time.monotonic() + timeout
    finished = 0
    while time.monotonic() < deadline:
        sampler.sample()
        finished = ImageRow.objects.filter(status__in=["done", "failed"]).count()
        if finished >= expected:
            return True
        time.sleep(0.5)
    return False


def image_report(first_post):
    """Outcomes and per-image latency (queued → finished) from the database."""
    from classifier.models import Image as ImageRow

    rows = list(ImageRow.objects.values_list("status", "queued_at", "finished_at"))
    finished = [(queued, done) for status, queued, done in rows if done is not None]
    latencies = np.array([(done - queued).total_seconds() for queued, done in finished] or [0.0])
    return {
        "stored": len(rows),
        "done": sum(status == "done" for status, _, _ in rows),
        "failed": sum(status == "failed" for status, _, _ in rows),
        "lost": sum(status in ("queued", "processing") for status, _, _ in rows),
        "seconds": max((done.timestamp() for _, done in finished), default=first_post) - first_post,
        "latency_p50": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95": round(float(np.percentile(latencies, 95)), 3),
    }


def publish(result, name):
    """Print the result as a table and write it to bench/results/<name>.json."""
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
