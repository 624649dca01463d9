"""Deploy fixtures: provisioning under names of each test's own, on the suite's moto server."""
from uuid import uuid4

import pytest

from deploy.provision import teardown
from imgsite.aws import client


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
