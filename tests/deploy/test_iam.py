"""Each tier's role grants exactly what its code uses, on exactly its own resources, and parliament
(the IAM linter) finds nothing above LOW in any of them."""
import importlib.resources
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from deploy.iam import (
    ASSUME_ROLE_POLICY,
    DRAINING_TAG,
    FLEET_TAG,
    WORKER_PARAMETERS,
    autoscaler_policy,
    web_policy,
    worker_policy,
)
from deploy.provision import provision
from imgsite.aws import client
from scaling.fleets import ec2 as ec2_fleet

ACCOUNT = "111122223333"
TEMPLATE = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:launch-template/lt-0123456789abcdef0"
QUEUE, DLQ = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:jobs", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:jobs-dlq"
INSTANCES = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/*"
SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


@pytest.fixture
def names(settings):
    settings.IMAGE_BUCKET, settings.CLASSIFY_QUEUE, settings.DEAD_LETTER_QUEUE = "pics", "jobs", "jobs-dlq"
    settings.AWS_REGION, settings.SSM_PARAMETER_PREFIX = "eu-west-1", "/imgsite/prod"
    settings.FLEET_NAME, settings.ASG_NAME, settings.EC2_INSTANCE_PROFILE = "prod", "prod-group", ""
    settings.EC2_INSTANCE_TYPE, settings.AUTOSCALE_CLOUDWATCH_METRIC = "c7i.large", False
    return settings


def statements(policy):
    """{Sid: (actions, resources, condition)}, order aside."""
    assert policy["Version"] == "2012-10-17"
    return {item["Sid"]: (set(item["Action"]), set(item["Resource"]), item.get("Condition"))
            for item in policy["Statement"]}


def grants(policy):
    return {(action, resource) for actions, resources, _ in statements(policy).values()
            for action in actions for resource in resources}


def test_the_worker_policy_grants_exactly_what_a_worker_uses(names):
    policy = worker_policy("aws", ACCOUNT)

    assert grants(policy) == {
        ("s3:GetObject", "arn:aws:s3:::pics/images/*"),
        ("s3:PutObject", "arn:aws:s3:::pics/images/*/thumbnail.jpg"),
        ("s3:DeleteObject", "arn:aws:s3:::pics/images/*/thumbnail.jpg"),
        ("s3:ListBucket", "arn:aws:s3:::pics"),
        ("sqs:ReceiveMessage", QUEUE),
        ("sqs:DeleteMessage", QUEUE),
        ("sqs:ChangeMessageVisibility", QUEUE),
        ("sqs:SendMessage", QUEUE),
        ("sqs:GetQueueAttributes", QUEUE),
        ("ssm:GetParameters", f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/imgsite/prod/DATABASE_URL"),
        ("ssm:GetParameters", f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/imgsite/prod/SENTRY_DSN"),
    }
    assert not any(condition for _, _, condition in statements(policy).values())


def test_the_web_policy_stores_signs_and_deletes_images_and_sends_tasks_nothing_more(names):
    policy = web_policy("aws", ACCOUNT)

    assert grants(policy) == {
        ("s3:PutObject", "arn:aws:s3:::pics/images/*"),
        ("s3:GetObject", "arn:aws:s3:::pics/images/*"),
        ("s3:DeleteObject", "arn:aws:s3:::pics/images/*"),
        ("s3:ListBucket", "arn:aws:s3:::pics"),
        ("sqs:SendMessage", QUEUE),
        ("sqs:GetQueueAttributes", QUEUE),
    }
    assert not any(condition for _, _, condition in statements(policy).values())


def common_autoscaler_statements():
    return {
        "UseTheQueue": ({"sqs:GetQueueAttributes", "sqs:SendMessage"}, {QUEUE}, None),
        "SweepDeadLetters": ({"sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}, {DLQ}, None),
        "ListImages": ({"s3:ListBucket"}, {"arn:aws:s3:::pics"}, {"StringEquals": {"s3:prefix": ["images/"]}}),
        "DeleteOrphans": ({"s3:DeleteObject"}, {"arn:aws:s3:::pics/images/*"}, None),
    }


def test_the_ec2_autoscaler_launches_from_the_template_as_its_type_and_touches_only_its_fleet(names):
    policy = autoscaler_policy("aws", ACCOUNT, TEMPLATE, backend="ec2")

    ours = {"StringEquals": {"aws:ResourceTag/imgsite:fleet": "prod"}}
    assert statements(policy) == {
        **common_autoscaler_statements(),
        "SeeInstances": ({"ec2:DescribeInstances"}, {"*"}, None),
        "LaunchWorkers": ({"ec2:RunInstances"}, {
            INSTANCES, "arn:aws:ec2:eu-west-1::image/*", TEMPLATE,
            f"arn:aws:ec2:eu-west-1:{ACCOUNT}:network-interface/*", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:security-group/*",
            f"arn:aws:ec2:eu-west-1:{ACCOUNT}:subnet/*", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:volume/*",
        }, {"ArnEquals": {"ec2:LaunchTemplate": TEMPLATE},
            "StringEqualsIfExists": {"ec2:InstanceType": ["c7i.large"], "aws:RequestTag/imgsite:fleet": "prod"}}),
        "TagAtLaunch": ({"ec2:CreateTags"}, {INSTANCES}, {
            "StringEquals": {"ec2:CreateAction": "RunInstances", "aws:RequestTag/imgsite:fleet": "prod"},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["imgsite:fleet", "Name"]}}),
        "MarkDraining": ({"ec2:CreateTags"}, {INSTANCES}, {
            **ours, "ForAllValues:StringEquals": {"aws:TagKeys": ["imgsite:draining-since"]}}),
        "TerminateOwnWorkers": ({"ec2:TerminateInstances"}, {INSTANCES}, ours),
        "PassTheWorkerRole": ({"iam:PassRole"}, {f"arn:aws:iam::{ACCOUNT}:role/prod"},
                              {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
    }


def test_the_ec2_autoscaler_passes_the_role_in_the_workers_instance_profile(names):
    names.EC2_INSTANCE_PROFILE = f"arn:aws:iam::{ACCOUNT}:instance-profile/prod-workers"

    _, roles, _ = statements(autoscaler_policy("aws", ACCOUNT, TEMPLATE, backend="ec2"))["PassTheWorkerRole"]
    assert roles == {f"arn:aws:iam::{ACCOUNT}:role/prod-workers"}


def test_the_ec2_autoscaler_needs_the_templates_arn(names):
    with pytest.raises(ValueError, match="launch template"):
        autoscaler_policy("aws", ACCOUNT, None, backend="ec2")


def test_the_asg_autoscaler_sizes_only_its_group_and_launches_nothing_itself(names):
    policy = autoscaler_policy("aws", ACCOUNT, backend="asg")

    assert statements(policy) == {
        **common_autoscaler_statements(),
        "SeeInstances": ({"autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"}, {"*"}, None),
        "SizeTheGroup": ({"autoscaling:SetDesiredCapacity", "autoscaling:SetInstanceProtection",
                          "autoscaling:TerminateInstanceInAutoScalingGroup"},
                         {f"arn:aws:autoscaling:eu-west-1:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/prod-group"},
                         None),
        "MarkDraining": ({"ec2:CreateTags"}, {INSTANCES}, {
            "StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": "prod-group"},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["imgsite:draining-since"]}}),
    }
    assert not {action for action, _ in grants(policy)} & {"ec2:RunInstances", "iam:PassRole",
                                                           "ec2:TerminateInstances"}


def test_the_autoscaler_publishes_to_cloudwatch_only_when_asked_and_only_its_namespace(names):
    assert "PublishBacklog" not in statements(autoscaler_policy("aws", ACCOUNT, backend="asg"))
    names.AUTOSCALE_CLOUDWATCH_METRIC, names.CLOUDWATCH_NAMESPACE = True, "imgsite-prod"

    assert statements(autoscaler_policy("aws", ACCOUNT, backend="asg"))["PublishBacklog"] == (
        {"cloudwatch:PutMetricData"}, {"*"}, {"StringEquals": {"cloudwatch:namespace": "imgsite-prod"}})


def all_policies():
    return {"worker": worker_policy("aws", ACCOUNT), "web": web_policy("aws", ACCOUNT),
            "autoscaler-ec2": autoscaler_policy("aws", ACCOUNT, TEMPLATE, backend="ec2"),
            "autoscaler-asg": autoscaler_policy("aws", ACCOUNT, backend="asg")}


def test_every_policy_only_allows_names_its_partition_and_stars_only_what_has_no_resources(names):
    names.AUTOSCALE_CLOUDWATCH_METRIC = True
    unscoped = {"ec2:DescribeInstances", "autoscaling:DescribeAutoScalingGroups",
                "cloudwatch:PutMetricData"}  # no resource-level permissions exist for these
    for tier, policy in {**all_policies(), "china": worker_policy("aws-cn", ACCOUNT)}.items():
        for statement in policy["Statement"]:
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, tier  # no Not*
            assert statement["Effect"] == "Allow"
            assert not any("*" in action for action in statement["Action"])
            if statement["Resource"] == ["*"]:
                assert set(statement["Action"]) <= unscoped, statement["Sid"]
            else:
                partition = "aws-cn" if tier == "china" else "aws"
                assert all(resource.startswith(f"arn:{partition}:") for resource in statement["Resource"])


def linter():
    """parliament, which imports pkg_resources (gone from setuptools 81 on) for one function:
    resource_filename. It gets that function alone, and nothing else sees the stand-in."""
    if "parliament" not in sys.modules:
        standin = types.ModuleType("pkg_resources")
        standin.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
        real = sys.modules.get("pkg_resources")
        sys.modules["pkg_resources"] = standin
        try:
            import parliament  # noqa: F401
        finally:
            if real is None:
                del sys.modules["pkg_resources"]
            else:
                sys.modules["pkg_resources"] = real
    return sys.modules["parliament"]


def findings(policy, community=False):
    """[(issue, severity, where)] that parliament reports for the document."""
    parliament = linter()
    if community:
        parliament.override_config(
            str(importlib.resources.files("parliament.community_auditors") / "config_override.yaml"))
    analysed = parliament.analyze_policy_string(json.dumps(policy), include_community_auditors=community)
    return [(finding.issue, parliament.enhance_finding(finding).severity, finding.location)
            for finding in analysed.findings]


@pytest.mark.parametrize("tier", ["worker", "web", "autoscaler-ec2", "autoscaler-asg"])
def test_parliament_finds_nothing_above_low(names, tier):
    names.AUTOSCALE_CLOUDWATCH_METRIC = True
    policy = all_policies()[tier]

    above_low = [finding for finding in findings(policy) if SEVERITIES.index(finding[1]) > SEVERITIES.index("LOW")]
    assert above_low == []


def test_parliament_would_report_a_medium_finding(names):
    """The check above can fail: a statement whose resources cannot match its action is MEDIUM."""
    policy = web_policy("aws", ACCOUNT)
    policy["Statement"][0]["Resource"] = [QUEUE]

    assert ("RESOURCE_MISMATCH", "MEDIUM") in [finding[:2] for finding in findings(policy)]


def test_the_community_auditors_flag_only_the_ec2_backends_pass_role(names):
    """Launching instances with a role is what Rhino Security Labs calls privilege escalation:
    with the ec2 backend the autoscaler can start the workers' role (SECURITY.md, Known limits).
    The asg backend launches through the group's own role, and is clean."""
    names.AUTOSCALE_CLOUDWATCH_METRIC = True
    reported = {tier: sorted(issue for issue, severity, _ in findings(policy, community=True)
                             if SEVERITIES.index(severity) > SEVERITIES.index("LOW"))
                for tier, policy in all_policies().items()}

    assert reported == {"worker": [], "web": [], "autoscaler-asg": [],
                        "autoscaler-ec2": ["PERMISSIONS_MANAGEMENT_ACTIONS", "PRIVILEGE_ESCALATION"]}


def test_the_policies_use_the_tags_and_parameters_the_code_uses():
    spec = importlib.util.spec_from_file_location(
        "worker_env", Path(django_settings.BASE_DIR) / "worker_ami" / "worker_env.py")
    worker_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker_env)

    assert WORKER_PARAMETERS == worker_env.PARAMETERS
    assert (FLEET_TAG, DRAINING_TAG) == (ec2_fleet.FLEET_TAG, ec2_fleet.DRAINING_TAG)


def test_each_role_on_moto_is_only_for_ec2_and_has_only_its_policy(own_names):
    provision(iam=True)
    iam = client("iam")
    moto_account = "123456789012"
    expected = {own_names: ("imgsite-worker", worker_policy("aws", moto_account)),
                f"{own_names}-web": ("imgsite-web", web_policy("aws", moto_account)),
                f"{own_names}-autoscaler": ("imgsite-autoscaler", autoscaler_policy("aws", moto_account))}

    for name, (policy_name, policy) in expected.items():
        role = iam.get_role(RoleName=name)["Role"]
        assert role["AssumeRolePolicyDocument"] == ASSUME_ROLE_POLICY
        assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [policy_name]
        assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
        assert iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"] == policy
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        assert [attached["RoleName"] for attached in profile["Roles"]] == [name]


def test_with_the_ec2_backend_the_autoscalers_role_names_the_provisioned_template(own_names, moto_ami, settings):
    settings.AUTOSCALE_BACKEND = "ec2"
    for dry_run in (True, False):
        with pytest.raises(ImproperlyConfigured, match="--with-launch-template"):
            provision(dry_run, iam=True)
    planned = provision(dry_run=True, iam=True, launch_template=True, ami_id=moto_ami)
    assert f"add policy imgsite-autoscaler on IAM role {own_names}-autoscaler" in planned

    provision(iam=True, launch_template=True, ami_id=moto_ami)

    template_id = client("ec2").describe_launch_templates(
        LaunchTemplateNames=[own_names])["LaunchTemplates"][0]["LaunchTemplateId"]
    document = client("iam").get_role_policy(RoleName=f"{own_names}-autoscaler",
                                             PolicyName="imgsite-autoscaler")["PolicyDocument"]
    launch = next(item for item in document["Statement"] if item["Sid"] == "LaunchWorkers")
    assert launch["Condition"]["ArnEquals"]["ec2:LaunchTemplate"] == (
        f"arn:aws:ec2:{settings.AWS_REGION}:123456789012:launch-template/{template_id}")
    assert provision(iam=True, launch_template=True, ami_id=moto_ami) == []
