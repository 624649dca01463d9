"""Deploy fixtures: provisioning under names of each test's own, on the suite's moto server, and
venvs built from one tier's lock file alone."""
import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

from deploy.provision import provision, teardown
from imgsite.aws import client

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements"


@pytest.fixture
def moto_ami(aws):
    """An image id moto knows; launch templates and groups only need it to exist."""
    return client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


@pytest.fixture
def own_names(settings, aws):
    """Settings naming a bucket, queues, role, template and group of this test's own; all removed after."""
    name = f"imgsite-deploy-{uuid4().hex[:8]}"
    settings.IMAGE_BUCKET = settings.FLEET_NAME = settings.ASG_NAME = name
    settings.CLASSIFY_QUEUE, settings.DEAD_LETTER_QUEUE = name, f"{name}-dlq"
    settings.EC2_LAUNCH_TEMPLATE = settings.EC2_INSTANCE_PROFILE = settings.EC2_AMI_ID = ""
    settings.CLASSIFY_QUEUE_URL = ""
    settings.EC2_SUBNET_ID = client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    settings.AUTOSCALE_MIN_NODES, settings.AUTOSCALE_MAX_NODES = 0, 2
    yield name
    bucket = client("s3").list_objects_v2(Bucket=name).get("Contents", []) if name in bucket_names() else []
    for item in bucket:
        client("s3").delete_object(Bucket=name, Key=item["Key"])
    teardown(iam=True, launch_template=True, asg=True)


def bucket_names():
    return {bucket["Name"] for bucket in client("s3").list_buckets()["Buckets"]}


@pytest.fixture
def own_resources(own_names):
    """own_names, with its bucket and queues made on the suite's moto server."""
    provision()
    return own_names


@pytest.fixture(scope="session")
def tier_venv(tmp_path_factory):
    """tier_venv("web"): a venv in a new directory holding exactly requirements/web.txt, every file
    checked against its hash. Built once per session and tier; uv's cache, outside the clone,
    makes a rebuild take seconds, so nothing built is ever reused across sessions."""
    built = {}

    def build(tier):
        if tier not in built:
            venv = tmp_path_factory.mktemp(f"{tier}-tier") / "venv"
            uv = Path(sys.executable).parent / "uv"
            python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
            env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
            subprocess.run([uv, "venv", "--quiet", "--python", python, venv], env=env, check=True, timeout=120)
            sync = [uv, "pip", "sync", "--quiet", "--require-hashes", "--python", venv / "bin" / "python",
                    REQUIREMENTS / f"{tier}.txt"]
            # From the cache alone when it holds everything; otherwise from the index.
            if subprocess.run([*sync, "--offline"], env=env, capture_output=True, timeout=600).returncode:
                subprocess.run(sync, env=env, check=True, timeout=1800)
            built[tier] = venv
        return built[tier]

    return build
