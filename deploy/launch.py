"""The workers' launch template (the baked AMI plus rendered user data) and Auto Scaling group.

The template's default version is what both fleets launch: the ec2 backend through
EC2_LAUNCH_TEMPLATE, the asg backend through the group. The group's desired capacity
belongs to the autoscaler, so re-provisioning never touches it.
"""
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from imgsite.aws import client

WORKER_AMI_PREFIX = "imgsite-worker-"  # Packer's ami_name in worker_ami/worker.pkr.hcl


def latest_worker_ami():
    """The newest image this account built with worker_ami/worker.pkr.hcl, or None."""
    images = client("ec2").describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": [f"{WORKER_AMI_PREFIX}*"]},
                                  {"Name": "state", "Values": ["available"]}])["Images"]
    return max(images, key=lambda image: image["CreationDate"])["ImageId"] if images else None


def worker_ami(ami_id=None):
    ami_id = ami_id or settings.EC2_AMI_ID or latest_worker_ami()
    if not ami_id:
        raise ImproperlyConfigured("no worker AMI: build one (worker_ami/README.md), or give --ami-id / EC2_AMI_ID")
    return ami_id


def launch_template_data(ami_id, instance_profile, user_data):
    """What every worker instance is launched with. IMDSv2 only; the instance ends on shutdown."""
    data = {
        "ImageId": ami_id,
        "InstanceType": settings.EC2_INSTANCE_TYPE,
        "IamInstanceProfile": {"Name": instance_profile},
        "UserData": user_data,
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "TagSpecifications": [{"ResourceType": "instance",
                               "Tags": [{"Key": "Name", "Value": f"{settings.FLEET_NAME}-worker"}]}],
    }
    if settings.EC2_SECURITY_GROUP_IDS:
        data["SecurityGroupIds"] = sorted(settings.EC2_SECURITY_GROUP_IDS)
    return data


def covers(current, wanted):
    """True if `current` has every value of `wanted` (AWS may add defaults of its own)."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(covers(current.get(key), value) for key, value in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(current, list) and len(current) == len(wanted)
                and all(covers(c, w) for c, w in zip(current, wanted)))
    return current == wanted


def default_version_data(name):
    try:
        versions = client("ec2").describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Default"])
    except ClientError as exc:
        if "NotFound" in exc.response["Error"]["Code"]:
            return None
        raise
    return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def ensure_launch_template(name, data, dry_run=False):
    """Create the template, or make a new default version when what we launch has changed."""
    ec2 = client("ec2")
    current = default_version_data(name)
    if current is None:
        if not dry_run:
            ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
        return [f"create launch template {name} ({data['ImageId']}, {data['InstanceType']})"]
    if covers(current, data):
        return []
    if not dry_run:
        version = ec2.create_launch_template_version(LaunchTemplateName=name, LaunchTemplateData=data)
        number = version["LaunchTemplateVersion"]["VersionNumber"]
        ec2.modify_launch_template(LaunchTemplateName=name, DefaultVersion=str(number))
    return [f"make a new default version of launch template {name} ({data['ImageId']}, {data['InstanceType']})"]


def delete_launch_template(name, dry_run=False):
    if default_version_data(name) is None:
        return []
    if not dry_run:
        client("ec2").delete_launch_template(LaunchTemplateName=name)
    return [f"delete launch template {name}"]


def current_group(name):
    groups = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0] if groups else None


def subnets():
    names = [subnet.strip() for subnet in settings.EC2_SUBNET_ID.split(",") if subnet.strip()]
    if not names:
        raise ImproperlyConfigured("an Auto Scaling group needs EC2_SUBNET_ID (one or more subnets, comma-separated)")
    return ",".join(names)


def group_settings(template):
    """The group's shape; its MinSize never exceeds AUTOSCALE_MIN_NODES, or it could not shrink."""
    return {
        "LaunchTemplate": {"LaunchTemplateName": template, "Version": "$Default"},
        "MinSize": settings.AUTOSCALE_MIN_NODES,
        "MaxSize": settings.AUTOSCALE_MAX_NODES,
        "VPCZoneIdentifier": subnets(),
    }


def group_differs(group, wanted):
    template = group.get("LaunchTemplate") or {}
    return (template.get("LaunchTemplateName") != wanted["LaunchTemplate"]["LaunchTemplateName"]
            or template.get("Version") != wanted["LaunchTemplate"]["Version"]
            or group["MinSize"] != wanted["MinSize"] or group["MaxSize"] != wanted["MaxSize"]
            or sorted(group["VPCZoneIdentifier"].split(",")) != sorted(wanted["VPCZoneIdentifier"].split(",")))


def ensure_auto_scaling_group(name, template, dry_run=False):
    """Create the group empty (at MinSize), or bring its shape up to date; never its desired capacity.

    New instances are not protected from scale-in: the asg fleet protects exactly the busy ones.
    """
    autoscaling = client("autoscaling")
    wanted = group_settings(template)
    group = current_group(name)
    if group is None:
        if not dry_run:
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=name, DesiredCapacity=wanted["MinSize"],
                NewInstancesProtectedFromScaleIn=False, **wanted)
        return [f"create Auto Scaling group {name} ({wanted['MinSize']}..{wanted['MaxSize']} instances)"]
    if not group_differs(group, wanted):
        return []
    if not dry_run:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, **wanted)
    return [f"update Auto Scaling group {name} ({wanted['MinSize']}..{wanted['MaxSize']} instances)"]


def delete_auto_scaling_group(name, dry_run=False):
    """Delete the group and terminate its instances (each worker gets SIGTERM: a warm shutdown)."""
    if current_group(name) is None:
        return []
    if not dry_run:
        client("autoscaling").delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    return [f"delete Auto Scaling group {name} and terminate its instances"]
