"""worker_ami/provision.sh: checked statically, and its application steps run in a throwaway prefix.

The system steps (dnf, useradd, systemctl) need Amazon Linux as root and are checked by reading
them; the steps that build the worker run here: copy the application, make a venv, build the
model, place ResNet50 weights from a URL, and classify a picture with each model, in a venv built
from requirements/worker.txt alone (the tier_venv fixture), as on the image. The ResNet50 weights
are random, made by the test itself: the real file is not in the repository.
"""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

SCRIPT = Path(settings.BASE_DIR) / "worker_ami" / "provision.sh"

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def run(*steps, **env):
    # Without the suite's DEBUG=true: the build instance has no DEBUG and no SECRET_KEY either.
    environment = {**{k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")},
                   "APP_SOURCE": str(settings.BASE_DIR), **env}
    return subprocess.run(["bash", str(SCRIPT), *steps], env=environment, capture_output=True, text=True,
                          timeout=600)


def function(name):
    """The body of one step, to read."""
    return re.search(rf"^{name}\(\) \{{\n(.*?)^\}}", SCRIPT.read_text(), re.MULTILINE | re.DOTALL).group(1)


def test_bash_parses_it():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_it_runs_every_step_in_order_by_default():
    steps = re.search(r"^STEPS=\((.*?)\)", SCRIPT.read_text(), re.MULTILINE | re.DOTALL).group(1).split()

    assert steps == ["install_system_packages", "create_service_user", "install_app", "make_venv", "build_model",
                     "place_resnet50_weights", "smoke_test", "install_unit", "lock_down", "clean_up"]


def test_the_system_steps_install_python_and_an_unprivileged_user():
    assert "dnf install -y -q python3.11 python3.11-pip" in function("install_system_packages")
    user = function("create_service_user")
    assert "useradd --system --no-create-home" in user and "--shell /usr/sbin/nologin" in user
    assert 'chown -R root:root "$PREFIX"' in function("lock_down")  # the service user can write none of it


def test_the_venv_gets_the_worker_requirements():
    assert "REQUIREMENTS=${REQUIREMENTS:-requirements/worker.txt}" in SCRIPT.read_text()
    assert '-r "$REQUIREMENTS"' in function("make_venv")


def test_nothing_secret_is_baked_in():
    text = SCRIPT.read_text()

    assert "SECRET_KEY" not in text and "SSM" not in text
    assert "env -u AWS_ENDPOINT_URL -u DATABASE_URL" in function("run_django")
    assert "DEBUG=true" in function("run_django")  # so that no secret key is needed at all


def test_an_unknown_step_is_refused():
    result = run("install_everything", PREFIX="/nonexistent")

    assert result.returncode == 1 and "no step install_everything" in result.stderr


def test_it_copies_the_application_and_makes_a_venv(tmp_path):
    (requirements := tmp_path / "nothing.txt").write_text("# no packages: this checks the venv, not PyPI\n")

    result = run("install_app", "make_venv", PREFIX=str(tmp_path / "imgsite"), REQUIREMENTS=str(requirements),
                 PYTHON=sys.executable)

    assert result.returncode == 0, result.stdout + result.stderr
    app = tmp_path / "imgsite" / "app"
    assert sorted(path.name for path in app.iterdir()) == sorted(
        ["manage.py", "imgsite", "accounts", "classifier", "scaling", "deploy", "templates", "static",
         "requirements", "worker_ami"])
    assert not list(app.rglob("__pycache__"))
    venv_python = tmp_path / "imgsite" / "venv" / "bin" / "python"
    assert subprocess.run([venv_python, "-c", "import sys; assert sys.prefix != sys.base_prefix"]).returncode == 0


@pytest.fixture(scope="module")
def legacy_resnet_weights(tmp_path_factory):
    """Random ResNet50 weights in the legacy .h5 layout that Keras-applications publishes."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from classifier.resnet import build_keras_model

    path = tmp_path_factory.mktemp("weights") / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, build_keras_model())
    return path


def test_it_builds_the_models_places_resnet50_and_classifies_with_both(tmp_path, legacy_resnet_weights, tier_venv):
    prefix = tmp_path / "imgsite"
    checksum = hashlib.sha256(legacy_resnet_weights.read_bytes()).hexdigest()

    result = run("install_app", "build_model", "place_resnet50_weights", "smoke_test", PREFIX=str(prefix),
                 VENV=str(tier_venv("worker")), RESNET50_WEIGHTS_URL=legacy_resnet_weights.as_uri(),
                 RESNET50_WEIGHTS_SHA256=checksum, PYTHONDONTWRITEBYTECODE="")  # as pip's compiled venv

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    models = prefix / "models"
    assert {path.name for path in models.iterdir()} == {
        "efficientnet_lite0.keras", "efficientnet_lite0.tflite", "efficientnet_lite0_int8.tflite",
        "imagenet_hierarchy.json", "resnet50_imagenet.weights.h5"}
    assert "placed" in result.stdout
    assert result.stdout.count("smoke test") == 1 and len(re.findall(r"^\S+\.png\b", result.stdout, re.M)) == 2


def test_a_weights_file_with_the_wrong_checksum_stops_the_bake(tmp_path, legacy_resnet_weights, tier_venv):
    result = run("install_app", "place_resnet50_weights", PREFIX=str(tmp_path / "imgsite"),
                 VENV=str(tier_venv("worker")), RESNET50_WEIGHTS_URL=legacy_resnet_weights.as_uri(),
                 RESNET50_WEIGHTS_SHA256="0" * 64)

    assert result.returncode != 0 and "SHA-256 mismatch" in result.stderr
    assert not (tmp_path / "imgsite" / "models" / "resnet50_imagenet.weights.h5").exists()
