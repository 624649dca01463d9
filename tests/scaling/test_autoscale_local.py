"""The local backend for real: `manage.py autoscale --backend local` takes 40 queued images
from zero workers to done, then back to zero, without interrupting a task; and its recorded
passes decide the same again through the simulator's bookkeeping."""
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import Image
from classifier.upload import accept_uploads
from imgsite.processes import stop_process
from scaling.autoscaler import policy_settings, replay
from scaling.models import ScalingEvent
from scaling.policy import Controller
from tests.conftest import LOG_DIR, database_url, wait_until
from tests.corpus import photo_jpeg

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
MAX_NODES = 2
# A local worker is up in seconds; the run goes back to zero soon after the work.
FAST = {"AUTOSCALE_BOOT_SECONDS": "5", "AUTOSCALE_IDLE_HOLD_SECONDS": "3", "AUTOSCALE_BUSY_INTERVAL": "1"}


def policy():
    """The PolicySettings the autoscaler process below runs with."""
    return replace(policy_settings(0, MAX_NODES, 1), boot_seconds=5.0, idle_hold_seconds=3.0,
                   busy_interval_seconds=1.0)


@pytest.fixture
def autoscaler(tmp_path, aws, empty_queues):
    env = {**os.environ, "DATABASE_URL": database_url(), "VAR_DIR": str(tmp_path), **FAST}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / "autoscaler.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "autoscale", "--backend", "local", "--min", "0", "--max", str(MAX_NODES),
             "--interval", "1", "--retire-on-exit"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield process
    stop_process(process, timeout=60)


def fleet_size(event):
    return event.booting + event.running + event.draining


def test_it_scales_from_zero_to_n_and_back_without_interrupting_a_task(user, autoscaler):
    wait_until(lambda: ScalingEvent.objects.exists(), timeout=30, message="the first pass")
    uploads = [SimpleUploadedFile(f"cat-{i}.jpg", photo_jpeg("chelsea", max_side=300 + i), "image/jpeg")
               for i in range(40)]
    accept_uploads(user, uploads)

    wait_until(lambda: not Image.objects.exclude(status="done").exists(), timeout=180,
               message="all 40 images to be done")
    last_done = max(Image.objects.values_list("finished_at", flat=True))
    wait_until(lambda: ScalingEvent.objects.filter(created_at__gt=last_done, booting=0, running=0,
                                                   draining=0).exists(),
               timeout=60, message="the fleet to return to zero")

    events = list(ScalingEvent.objects.order_by("created_at"))
    assert fleet_size(events[0]) == 0
    assert 1 <= max(fleet_size(event) for event in events) <= MAX_NODES
    assert any(event.action.startswith("launch") for event in events)
    assert any(event.action.startswith("retire") for event in events)
    assert not [event for event in events if event.error]
    # No task was interrupted: every image was claimed once, by a node that finished it.
    assert set(Image.objects.values_list("attempts", flat=True)) == {1}
    assert Image.objects.filter(predictions__rank=1).count() == 40

    # The run, replayed through the bookkeeping the simulator uses, decides the same; kept as
    # an artifact (tests/scaling/data/real_run.json is one such run).
    replayed = list(replay(events, Controller(policy())))
    assert [(e.pk, e.target, e.reason) for e, _ in replayed] == [(e.pk, d.target, d.reason) for e, d in replayed]
    (LOG_DIR / "autoscaler-events.json").write_text(json.dumps({
        "settings": asdict(policy()),
        "events": [{"created_at": e.created_at.isoformat(), "last_seen_at": e.last_seen_at.isoformat(),
                    "reading": e.reading, "target": e.target, "reason": e.reason, "action": e.action,
                    "error": e.error} for e in events],
    }, indent=1))
