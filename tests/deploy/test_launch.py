"""The launch template and the Auto Scaling group that provisioning makes for the workers."""
import base64

import pytest
from django.core.exceptions import ImproperlyConfigured

from deploy.launch import covers, latest_worker_ami
from deploy.provision import provision
from imgsite.aws import client, queue_url


def template_data(name):
    versions = client("ec2").describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Default"])
    return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def group(name):
    return client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def test_the_template_launches_the_ami_with_the_role_imdsv2_and_the_user_data(own_names, moto_ami, settings):
    settings.EC2_SECURITY_GROUP_IDS = ["sg-2", "sg-1"]
    provision(iam=True, launch_template=True, ami_id=moto_ami)

    data = template_data(own_names)
    assert (data["ImageId"], data["InstanceType"]) == (moto_ami, "c7i.large")
    assert data["IamInstanceProfile"] == {"Name": own_names}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert data["SecurityGroupIds"] == ["sg-1", "sg-2"]
    user_data = base64.b64decode(data["UserData"]).decode()
    assert user_data.startswith("#cloud-config\n")
    assert f"CLASSIFY_QUEUE_URL={queue_url(own_names)}\n" in user_data
    # The fleet tag is the ec2 backend's to set: instances of the group must not look like its own.
    tags = {tag["Key"] for spec in data["TagSpecifications"] for tag in spec["Tags"]}
    assert tags == {"Name"}


def test_the_group_starts_empty_and_keeps_its_desired_capacity_across_runs(own_names, moto_ami, settings):
    provision(iam=True, asg=True, ami_id=moto_ami)
    created = group(own_names)
    assert (created["MinSize"], created["MaxSize"], created["DesiredCapacity"]) == (0, 2, 0)
    assert created["LaunchTemplate"]["LaunchTemplateName"] == own_names
    assert created["LaunchTemplate"]["Version"] == "$Default"
    assert created["NewInstancesProtectedFromScaleIn"] is False
    client("autoscaling").set_desired_capacity(AutoScalingGroupName=own_names, DesiredCapacity=1)

    settings.AUTOSCALE_MAX_NODES = 4
    provision(iam=True, asg=True, ami_id=moto_ami)

    updated = group(own_names)
    assert (updated["MaxSize"], updated["DesiredCapacity"]) == (4, 1)


def test_a_group_needs_subnets(own_names, moto_ami, settings):
    settings.EC2_SUBNET_ID = ""
    with pytest.raises(ImproperlyConfigured, match="EC2_SUBNET_ID"):
        provision(asg=True, ami_id=moto_ami)


def test_without_an_ami_id_it_takes_the_newest_image_packer_built(own_names, moto_ami):
    ec2 = client("ec2")
    instance = ec2.run_instances(ImageId=moto_ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    images = []
    try:
        assert latest_worker_ami() is None
        for name in ("imgsite-worker-20250101-000000", "imgsite-worker-20250202-000000", "something-else"):
            images.append(ec2.create_image(InstanceId=instance, Name=f"{name}-{own_names}")["ImageId"])

        assert latest_worker_ami() in images[:2]  # moto stamps both within the same second
        provision(launch_template=True)
        assert template_data(own_names)["ImageId"] == latest_worker_ami()
    finally:
        for image in images:
            ec2.deregister_image(ImageId=image)
        ec2.terminate_instances(InstanceIds=[instance])


def test_covers_ignores_what_aws_adds_but_not_what_we_set():
    wanted = {"MetadataOptions": {"HttpTokens": "required"}, "SecurityGroupIds": ["sg-1"]}
    assert covers({"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
                   "SecurityGroupIds": ["sg-1"], "EbsOptimized": False}, wanted)
    assert not covers({"MetadataOptions": {"HttpTokens": "optional"}, "SecurityGroupIds": ["sg-1"]}, wanted)
    assert not covers({"MetadataOptions": {"HttpTokens": "required"}, "SecurityGroupIds": ["sg-1", "sg-2"]}, wanted)
