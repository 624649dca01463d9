"""Reading our systemd units, and checking them with `systemd-analyze` on a scratch root.

verify checks that every Exec*= program exists, so it runs on a scratch root that holds the
system's units, ours, and stand-ins for the programs ours run.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = next((path for path in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                     if path.is_dir()), None)
needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None or SYSTEM_UNITS is None,
    reason="no systemd-analyze or system units; `make system-packages` installs systemd")


def directives(unit):
    """[(key, value)] of the unit file `unit` in order; keys such as Environment= may repeat."""
    lines = Path(unit).read_text().splitlines()
    return [tuple(line.split("=", 1)) for line in lines if "=" in line and not line.startswith("#")]


def values(unit, key):
    return [value for k, value in directives(unit) if k == key]


def value(unit, key):
    found = values(unit, key)
    assert len(found) == 1, f"{key}= appears {len(found)} times in {Path(unit).name}"
    return found[0]


def scratch_root(root, units):
    """`root` made a scratch root holding the system's units, `units` and stand-ins for their programs."""
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, root / "etc/systemd/system" / Path(unit).name)
        for key, command in directives(unit):
            if key.startswith("Exec"):
                program = root / command.split()[0].lstrip("-+!@").lstrip("/")
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    return root


def analyze(root, unit_name, *arguments):
    return subprocess.run([SYSTEMD_ANALYZE, *arguments, f"--root={root}", unit_name],
                          capture_output=True, text=True, timeout=60)
