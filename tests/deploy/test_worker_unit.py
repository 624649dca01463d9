"""worker_ami/imgsite-worker.service: `systemd-analyze verify` passes, and the unit says what it must.

verify checks that every Exec*= program exists, so it runs on a scratch root holding the
system's units and stand-ins for the worker's venv programs.
"""
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.deploy import systemd
from tests.deploy.systemd import needs_systemd, scratch_root

WORKER_AMI = Path(settings.BASE_DIR) / "worker_ami"
UNIT = WORKER_AMI / "imgsite-worker.service"
# The default TASK_TIME_LIMIT; the user data sets the unit's stop timeout from settings.
DEFAULT_TASK_TIME_LIMIT = 150


def directives():
    return systemd.directives(UNIT)


def value(key):
    return systemd.value(UNIT, key)


@pytest.fixture
def root(tmp_path):
    """A scratch root: the system's units, the worker's unit, and stand-ins for its programs."""
    return scratch_root(tmp_path, [UNIT])


def analyze(root, *arguments):
    return systemd.analyze(root, UNIT.name, *arguments)


@needs_systemd
def test_systemd_analyze_verify_passes_without_a_word(root):
    result = analyze(root, "verify")

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd
def test_verify_would_catch_a_mistake(root):
    broken = root / "etc/systemd/system" / UNIT.name
    broken.write_text(UNIT.read_text().replace("KillMode=mixed", "KillMode=gently"))

    result = analyze(root, "verify")

    assert "gently" in result.stdout + result.stderr


@needs_systemd
def test_the_sandbox_leaves_little_exposed(root):
    # systemd's own scale: 0 (locked down) to 10 (exposed); --threshold is in tenths.
    result = analyze(root, "security", "--offline=yes", "--threshold=20")

    assert result.returncode == 0, result.stdout[-2000:]


def test_it_runs_a_celery_worker_per_core_on_the_queue_as_the_service_user():
    command = value("ExecStart").split()

    assert command[:4] == ["/opt/imgsite/venv/bin/celery", "-A", "imgsite", "worker"]
    assert command[command.index("-Q") + 1] == "${CLASSIFY_QUEUE}"
    assert "--concurrency=${WORKER_CONCURRENCY}" in command
    assert (value("User"), value("Group")) == ("imgsite", "imgsite")
    assert value("Restart") == "on-failure"


def test_it_learns_its_node_name_and_secrets_before_each_start():
    assert value("ExecStartPre") == (
        "/opt/imgsite/venv/bin/python /opt/imgsite/app/worker_ami/worker_env.py /run/imgsite/worker.env")
    files = [v for k, v in directives() if k == "EnvironmentFile"]
    assert files == ["/etc/imgsite/worker.env", "-/run/imgsite/worker.env"]
    assert value("RuntimeDirectory") == "imgsite" and value("RuntimeDirectoryMode") == "0700"


def test_it_stops_with_a_warm_shutdown_that_outlasts_the_longest_task():
    assert value("KillSignal") == "SIGTERM"
    assert value("KillMode") == "mixed"  # SIGTERM to Celery's main process only
    assert int(value("TimeoutStopSec")) > DEFAULT_TASK_TIME_LIMIT


def test_a_memory_bomb_kills_one_pool_process_at_most_never_the_machine_or_the_unit():
    assert (value("MemoryHigh"), value("MemoryMax"), value("MemorySwapMax")) == ("80%", "90%", "0")
    assert value("OOMPolicy") == "continue"
    assert settings.CELERY_WORKER_MAX_MEMORY_PER_CHILD * 1024 > settings.DECODE_MEMORY_BUDGET


@pytest.mark.parametrize("key, expected", [
    ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
    ("ProtectControlGroups", "yes"), ("RestrictSUIDSGID", "yes"), ("CapabilityBoundingSet", ""),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"), ("UMask", "0077"),
])
def test_it_is_hardened(key, expected):
    assert value(key) == expected


def test_the_unit_finds_what_the_provisioning_script_puts_in_place():
    script = (WORKER_AMI / "provision.sh").read_text()
    environment = dict(item.split("=", 1) for k, v in directives() if k == "Environment" for item in v.split())

    assert "PREFIX=${PREFIX:-/opt/imgsite}" in script and "\nMODEL_DIR=$PREFIX/models\n" in script
    assert environment["MODEL_DIR"] == "/opt/imgsite/models"
    assert re.search(r"^RESNET50_WEIGHTS=\$MODEL_DIR/(\S+)", script, re.MULTILINE).group(1) == Path(
        environment["RESNET50_WEIGHTS"]).name
    assert f'install -D -m 0644 "$APP_DIR/worker_ami/{UNIT.name}"' in script
    assert "SERVICE_USER=imgsite" in script
