"""deploy/systemd: the web tier's and the autoscaler's units verify, are sandboxed at least as
tightly as the worker's, and each reads an environment file of its own.

verify checks that every Exec*= program exists, so it runs on a scratch root holding the
system's units and stand-ins for the units' programs (as tests/deploy/test_worker_unit.py does).
"""
from pathlib import Path

import pytest
from django.conf import settings

from tests.deploy import systemd
from tests.deploy.systemd import analyze, needs_systemd, scratch_root

UNITS = Path(settings.BASE_DIR) / "deploy" / "systemd"
TIERS = {"imgsite-web.service": "web", "imgsite-autoscaler.service": "autoscaler"}


def values(unit, key):
    return systemd.values(UNITS / unit, key)


def value(unit, key):
    return systemd.value(UNITS / unit, key)


@pytest.fixture
def root(tmp_path):
    """A scratch root: the system's units, ours, and stand-ins for the programs they run."""
    return scratch_root(tmp_path, [UNITS / unit for unit in TIERS])


def test_there_is_a_unit_per_tier_beside_the_workers():
    assert sorted(path.name for path in UNITS.glob("*.service")) == sorted(TIERS)


@needs_systemd
@pytest.mark.parametrize("unit", TIERS)
def test_systemd_analyze_verify_passes_without_a_word(root, unit):
    result = analyze(root, unit, "verify")

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd
@pytest.mark.parametrize("unit", TIERS)
def test_the_sandbox_leaves_less_exposed_than_the_workers(root, unit):
    # systemd's own scale: 0 (locked down) to 10 (exposed); --threshold is in tenths. The worker's
    # unit is held to 2.0; these two need no JIT, so they also deny writable executable memory.
    result = analyze(root, unit, "security", "--offline=yes", "--threshold=15")

    assert result.returncode == 0, result.stdout[-2000:]


@needs_systemd
def test_the_score_would_catch_a_loosened_sandbox(root):
    unit = root / "etc/systemd/system/imgsite-web.service"
    loosened = [line for line in unit.read_text().splitlines()
                if not line.startswith(("Protect", "Private", "SystemCallFilter", "RestrictAddressFamilies"))]
    unit.write_text("\n".join(loosened) + "\n")

    assert analyze(root, unit.name, "security", "--offline=yes", "--threshold=15").returncode != 0


@pytest.mark.parametrize("unit, tier", TIERS.items())
def test_each_reads_its_own_environment_file_and_owns_nothing_else(unit, tier):
    assert value(unit, "EnvironmentFile") == f"/etc/imgsite/{tier}.env"
    assert value(unit, "ConditionPathExists") == f"/etc/imgsite/{tier}.env"
    assert value(unit, "DynamicUser") == "yes"
    assert value(unit, "StateDirectory") == f"imgsite-{tier}"
    environment = dict(item.split("=", 1) for line in values(unit, "Environment") for item in line.split())
    assert environment["VAR_DIR"] == environment["HOME"] == f"/var/lib/imgsite-{tier}"


def test_the_web_unit_runs_gunicorn_with_the_projects_configuration():
    assert value("imgsite-web.service", "ExecStart") == (
        "/opt/imgsite/venv/bin/gunicorn -c imgsite/gunicorn.conf.py imgsite.wsgi")
    assert value("imgsite-web.service", "ExecStartPre").endswith("manage.py collectstatic --no-input --verbosity 0")
    # Above gunicorn's graceful_timeout, so running requests finish.
    assert int(value("imgsite-web.service", "TimeoutStopSec")) > 30


def test_the_autoscaler_unit_runs_the_loop_with_its_settings_from_the_environment():
    assert value("imgsite-autoscaler.service", "ExecStart") == "/opt/imgsite/venv/bin/python manage.py autoscale"
    assert value("imgsite-autoscaler.service", "KillSignal") == "SIGTERM"  # the loop ends after its pass


@pytest.mark.parametrize("unit", TIERS)
@pytest.mark.parametrize("key, expected", [
    ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
    ("ProtectControlGroups", "yes"), ("RestrictSUIDSGID", "yes"), ("CapabilityBoundingSet", ""),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"), ("MemoryDenyWriteExecute", "yes"), ("UMask", "0077"),
])
def test_it_is_hardened(unit, key, expected):
    assert value(unit, key) == expected
