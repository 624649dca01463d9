"""worker_ami/worker.pkr.hcl passes `packer validate` (Debian's Packer 1.6.6, amazon-ebs built in)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

WORKER_AMI = Path(settings.BASE_DIR) / "worker_ami"
TEMPLATE = WORKER_AMI / "worker.pkr.hcl"
PACKER = shutil.which("packer")
needs_packer = pytest.mark.skipif(
    PACKER is None, reason="no packer binary; `make system-packages` installs Debian's (apt-get install packer)")


def validate(*arguments, cwd=WORKER_AMI):
    """`packer validate`, offline: no version check against checkpoint.hashicorp.com."""
    return subprocess.run([PACKER, "validate", *arguments], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CHECKPOINT_DISABLE": "1"})


@needs_packer
def test_packer_validates_the_template():
    result = validate("worker.pkr.hcl")

    assert result.returncode == 0, result.stdout + result.stderr


@needs_packer
def test_packer_validates_it_with_every_variable_set():
    result = validate("-var", "region=eu-west-1", "-var", "instance_type=c7i.xlarge",
                      "-var", "resnet50_weights_url=s3://models/resnet50.h5", "-var", "resnet50_weights_sha256=ab12",
                      "-var", "iam_instance_profile=packer-build", "-var", "volume_size=20", "worker.pkr.hcl")

    assert result.returncode == 0, result.stdout + result.stderr


@needs_packer
def test_packer_would_catch_a_missing_provisioning_script(tmp_path):
    shutil.copy(TEMPLATE, tmp_path / "worker.pkr.hcl")

    result = validate("worker.pkr.hcl", cwd=tmp_path)

    assert result.returncode != 0
    assert "provision.sh" in result.stdout + result.stderr


def test_the_base_image_is_found_by_filter_never_by_id():
    text = TEMPLATE.read_text()

    assert "source_ami_filter" in text and 'owners      = ["amazon"]' in text
    assert re.search(r"\bami-[0-9a-f]{8,}\b", text) is None


def test_it_has_no_required_plugins_block_which_packer_1_6_6_rejects():
    text = TEMPLATE.read_text()

    assert re.search(r"^\s*(packer|required_plugins)\s*\{", text, re.MULTILINE) is None


def test_packer_uploads_what_the_provisioning_script_installs():
    uploaded = re.search(r"app_paths\s*=\s*\[(.*?)\]", TEMPLATE.read_text()).group(1)
    installed = re.search(r"^APP_PATHS=\((.*?)\)", (WORKER_AMI / "provision.sh").read_text(), re.MULTILINE).group(1)

    assert re.findall(r'"([^"]+)"', uploaded) == installed.split()
