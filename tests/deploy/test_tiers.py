"""Each tier starts from a venv built from its lock file alone (requirements/<tier>.txt): the
packages its processes import are all there, and nothing it must not have (TensorFlow) is.

The processes run for real, from the tier's venv, against the suite's moto server and the test
database: the worker builds the model and classifies an upload; the web tier passes
`check --deploy` and takes an upload through gunicorn; the autoscaler launches an EC2 instance
for a waiting message. The web tier and the autoscaler run with the kernel's memory-deny-write-
execute (what their systemd units' MemoryDenyWriteExecute=yes asks for).
"""
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Image
from imgsite.aws import client, queue_url
from imgsite.processes import free_port, stop_process, wait_for_port
from scaling.fleets.ec2 import FLEET_TAG
from scaling.fleets.local import worker_argv
from scaling.models import ScalingEvent
from tests.conftest import LOG_DIR, database_url, wait_until
from tests.corpus import photo_jpeg

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

ROOT = Path(settings.BASE_DIR)
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
# Runs argv[1:] with PR_SET_MDWE (Linux 6.3+): memory may never be both writable and executable,
# nor become executable later; inherited by forks and kept across exec.
MDWE = ("import ctypes, os, sys\n"
        "if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0):\n"
        "    sys.exit('PR_SET_MDWE: ' + os.strerror(ctypes.get_errno()))\n"
        "os.execv(sys.argv[1], sys.argv[1:])")


def tier_env(venv, **extra):
    """The suite's environment (moto, queues, database), with the tier's venv first on the PATH
    and nothing that could reach another venv's packages."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")}
    # PYTHONDONTWRITEBYTECODE empty: the first imports leave bytecode in the new venv, as pip's
    # install-time compilation would have, so TensorFlow is compiled once, not per process.
    env.update(PATH=f"{venv}/bin:/usr/bin:/bin", PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="",
               DJANGO_SETTINGS_MODULE="imgsite.settings", DATABASE_URL=database_url(), **extra)
    return env


def run(venv, *argv, env, sandboxed=False, timeout=300):
    command = [str(venv / "bin" / "python"), *argv]
    if sandboxed:
        command = [command[0], "-c", MDWE, *command]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def production_env(venv, tmp_path, **extra):
    return tier_env(venv, DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="imgsite.example.com",
                    SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https", NUM_PROXIES="1",
                    VAR_DIR=str(tmp_path / "var"), **extra)


def has_tensorflow(venv, env):
    return run(venv, "-c", "import importlib.util; print(importlib.util.find_spec('tensorflow') is not None)",
               env=env).strip() == "True"


@pytest.fixture
def start():
    """start(name, argv, env): a process in the project's directory, logging to LOG_DIR/<name>.log;
    stopped after the test."""
    processes = []

    def start(name, argv, env):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / f"{name}.log", "ab") as log:
            processes.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        return processes[-1]

    yield start
    for process in processes:
        stop_process(process, timeout=30)


def test_the_worker_tier_builds_the_model_and_classifies_an_upload(tier_venv, tmp_path, transactional_db, alice,
                                                                   empty_queues, start):
    venv = tier_venv("worker")
    env = tier_env(venv, MODEL_DIR=str(tmp_path / "models"), VAR_DIR=str(tmp_path / "var"), CLASSIFIER_THREADS="1")

    tasks = run(venv, "-c", "import django; django.setup(); from imgsite.celery import app; "
                            "app.loader.import_default_modules(); print(*sorted(app.tasks))", env=env).split()
    assert "classifier.tasks.classify_images" in tasks
    run(venv, "manage.py", "build_model", env=env, timeout=600)
    assert {path.name for path in (tmp_path / "models").iterdir()} >= {
        "efficientnet_lite0.keras", "efficientnet_lite0.tflite"}
    start("tier-worker", [str(venv / "bin" / "python"), *worker_argv("tier-worker")[1:]],
          env={**env, "WORKER_NODE": "tier-worker"})

    files = [SimpleUploadedFile("chelsea.jpg", photo_jpeg("chelsea"), "image/jpeg")]
    assert alice.post(reverse("classifier:upload"), {"files": files}).status_code == 302
    image = wait_until(lambda: Image.objects.exclude(status__in=["queued", "processing"]).first(), timeout=180,
                       message="the worker tier to classify the upload")

    assert image.status == "done", image.error
    assert image.worker.startswith("tier-worker")
    assert image.predictions.get(rank=1).class_index in CAT_CLASSES


def test_the_web_tier_passes_check_deploy_and_takes_an_upload_through_gunicorn(
        tier_venv, tmp_path, transactional_db, django_user_model, own_resources, start):
    venv = tier_venv("web")
    port = free_port()
    env = production_env(venv, tmp_path, IMAGE_BUCKET=own_resources, CLASSIFY_QUEUE=own_resources,
                         DEAD_LETTER_QUEUE=f"{own_resources}-dlq", GUNICORN_BIND=f"127.0.0.1:{port}",
                         WEB_CONCURRENCY="2", GUNICORN_THREADS="2")

    assert not has_tensorflow(venv, env)
    assert "System check identified no issues" in run(venv, "manage.py", "check", "--deploy", "--fail-level",
                                                      "WARNING", env=env)
    run(venv, "manage.py", "createcachetable", env=env)
    run(venv, "manage.py", "collectstatic", "--no-input", "--verbosity", "0", env=env)
    django_user_model.objects.create_user("dora")
    token = run(venv, "manage.py", "create_api_token", "dora", env=env).strip()
    gunicorn = start("tier-web", [str(venv / "bin" / "python"), "-c", MDWE, str(venv / "bin" / "gunicorn"),
                                  "-c", "imgsite/gunicorn.conf.py", "imgsite.wsgi"], env=env)
    wait_for_port("127.0.0.1", port, timeout=60, process=gunicorn)
    base, behind_the_balancer = f"http://127.0.0.1:{port}", {"Host": "imgsite.example.com",
                                                             "X-Forwarded-Proto": "https"}

    health = requests.get(f"{base}/healthz", timeout=30)
    css = requests.get(f"{base}/static/base.css", headers=behind_the_balancer, timeout=30)
    answer = requests.post(f"{base}/api/v1/batches", files=[("images", ("chelsea.jpg", photo_jpeg("chelsea")))],
                           headers={**behind_the_balancer, "Authorization": f"Token {token}"}, timeout=60)
    plain_http = requests.get(f"{base}/api/v1/images", headers={"Host": "imgsite.example.com"},
                              allow_redirects=False, timeout=30)

    assert health.status_code == 200, health.text
    assert css.status_code == 200 and "body" in css.text
    assert answer.status_code == 201, answer.text[:1000]
    assert [image["status"] for image in answer.json()["images"]] == ["queued"]
    image = Image.objects.get(owner__username="dora")
    assert client("s3").head_object(Bucket=own_resources, Key=image.file.name)["ContentLength"] > 0
    assert plain_http.status_code == 301 and plain_http.headers["Location"].startswith("https://")


def test_the_autoscaler_tier_launches_a_worker_for_a_waiting_message(tier_venv, tmp_path, transactional_db,
                                                                     own_resources, moto_ami):
    venv = tier_venv("autoscaler")
    client("ec2").create_launch_template(LaunchTemplateName=own_resources, LaunchTemplateData={"ImageId": moto_ami})
    env = production_env(venv, tmp_path, AUTOSCALE_BACKEND="ec2", FLEET_NAME=own_resources,
                         EC2_LAUNCH_TEMPLATE=own_resources, IMAGE_BUCKET=own_resources, CLASSIFY_QUEUE=own_resources,
                         DEAD_LETTER_QUEUE=f"{own_resources}-dlq", AUTOSCALE_MAX_NODES="2")
    client("sqs").send_message(QueueUrl=queue_url(own_resources), MessageBody="an image is waiting")

    assert not has_tensorflow(venv, env)
    run(venv, "manage.py", "autoscale", "--once", env=env, sandboxed=True)

    event = ScalingEvent.objects.get()
    assert (event.backend, event.visible, event.target, event.error) == ("ec2", 1, 1, "")
    reservations = client("ec2").describe_instances(Filters=[{"Name": f"tag:{FLEET_TAG}", "Values": [own_resources]}])
    assert [instance["ImageId"] for reservation in reservations["Reservations"]
            for instance in reservation["Instances"]] == [moto_ami]
