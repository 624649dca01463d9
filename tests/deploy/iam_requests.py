"""What IAM checks for each AWS call a tier made (as tests/deploy/aws_calls records them), and
whether a policy document allows it, conditions included.

A call becomes one or more requests (action, resource, context): RunInstances, for instance, is
checked by AWS on the instance, its image, subnet, network interface, security group, volume and
launch template, passes the instance profile's role, and tags at creation. The context holds the
condition keys our documents use, read from the call, the tags its instances had when it was made
(the recorder notes them) and moto's state (the template's id and instance type), so that the
tag, template and type conditions are evaluated too.
"""
import json
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from django.conf import settings

from imgsite.aws import client

ACCOUNT = "123456789012"  # moto's
S3_ACTIONS = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "DeleteObject": "s3:DeleteObject", "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket"}


def recorded(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def arn(service, resource, account=ACCOUNT, region=None):
    return f"arn:aws:{service}:{settings.AWS_REGION if region is None else region}:{account}:{resource}"


def requests(call):
    """[(action, resource, context)] that IAM evaluates for one recorded call."""
    service, operation = call["service"], call["operation"]
    handler = globals().get(f"{service.replace('-', '_')}_requests")
    if handler is None:
        raise AssertionError(f"a call to {service}.{operation}, which no tier's policy covers")
    return handler(operation, call)


def s3_requests(operation, call):
    bucket = f"arn:aws:s3:::{call['Bucket']}"
    if operation == "DeleteObjects":
        return [("s3:DeleteObject", f"{bucket}/{key}", {}) for key in call["Delete"]]
    if operation not in S3_ACTIONS:
        raise AssertionError(f"an unexpected S3 call: {operation}")
    context = {"s3:prefix": call["Prefix"]} if "Prefix" in call else {}
    needs = [(S3_ACTIONS[operation], f"{bucket}/{call['Key']}" if "Key" in call else bucket, context)]
    if call.get("Error") in ("404", "NoSuchKey"):  # S3 says 404, not 403, only to those who may list
        needs.append(("s3:ListBucket", bucket, {}))
    return needs


def sqs_requests(operation, call):
    if "QueueUrl" in call:
        account, name = urlsplit(call["QueueUrl"]).path.strip("/").split("/")[-2:]
    else:
        account, name = ACCOUNT, call["QueueName"]
    return [(f"sqs:{operation}", arn("sqs", name, account), {})]


def ssm_requests(operation, call):
    names = call["Names"] if operation == "GetParameters" else [call["Path"]]
    return [(f"ssm:{operation}", arn("ssm", f"parameter{name}"), {}) for name in names]


def cloudwatch_requests(operation, call):
    return [(f"cloudwatch:{operation}", "*", {"cloudwatch:namespace": call["Namespace"]})]


def instance_tags(call, instance_id):
    """The instance's tags when the call was made (the recorder notes them)."""
    return call["InstanceTags"][instance_id]


def resource_tags(tags):
    return {f"aws:ResourceTag/{key}": value for key, value in tags.items()}


def request_tags(tags):
    keys = {f"aws:RequestTag/{tag['Key']}": tag["Value"] for tag in tags}
    return {**keys, "aws:TagKeys": [tag["Key"] for tag in tags]}


def ec2_requests(operation, call):
    if operation == "DescribeInstances":
        return [("ec2:DescribeInstances", "*", {})]
    if operation == "RunInstances":
        return run_instances_requests(call)
    if operation == "CreateTags":
        return [("ec2:CreateTags", arn("ec2", f"instance/{instance}"), {
            **resource_tags(instance_tags(call, instance)), **request_tags(call["Tags"])})
            for instance in call["Resources"]]
    if operation == "TerminateInstances":
        return [("ec2:TerminateInstances", arn("ec2", f"instance/{instance}"),
                 resource_tags(instance_tags(call, instance))) for instance in call["InstanceIds"]]
    raise AssertionError(f"an unexpected EC2 call: {operation}")


def run_instances_requests(call):
    reference = call["LaunchTemplate"]
    found = client("ec2").describe_launch_templates(**(
        {"LaunchTemplateIds": [reference["LaunchTemplateId"]]} if "LaunchTemplateId" in reference
        else {"LaunchTemplateNames": [reference["LaunchTemplateName"]]}))["LaunchTemplates"][0]
    template = arn("ec2", f"launch-template/{found['LaunchTemplateId']}")
    data = client("ec2").describe_launch_template_versions(
        LaunchTemplateId=found["LaunchTemplateId"], Versions=["$Default"])["LaunchTemplateVersions"][0][
        "LaunchTemplateData"]
    tags = [tag for spec in call.get("TagSpecifications", []) + data.get("TagSpecifications", [])
            if spec["ResourceType"] == "instance" for tag in spec["Tags"]]
    from_template = {"ec2:LaunchTemplate": template}
    needs = [("ec2:RunInstances", arn("ec2", "instance/*"),
              {**from_template, "ec2:InstanceType": data["InstanceType"], **request_tags(tags)}),
             ("ec2:RunInstances", arn("ec2", f"image/{data['ImageId']}", account=""), from_template),
             ("ec2:RunInstances", template, from_template)]
    needs += [("ec2:RunInstances", arn("ec2", f"{kind}/*"), from_template)
              for kind in ("network-interface", "security-group", "subnet", "volume")]
    if tags:
        needs.append(("ec2:CreateTags", arn("ec2", "instance/*"),
                      {"ec2:CreateAction": "RunInstances", **request_tags(tags)}))
    if "IamInstanceProfile" in data:
        needs.append(("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{data['IamInstanceProfile']['Name']}",
                      {"iam:PassedToService": "ec2.amazonaws.com"}))
    return needs


def autoscaling_requests(operation, call):
    if operation == "DescribeAutoScalingGroups":
        return [("autoscaling:DescribeAutoScalingGroups", "*", {})]
    # The instance's group, from the tag Auto Scaling puts on each of its instances.
    name = call.get("AutoScalingGroupName") or instance_tags(call, call["InstanceId"])["aws:autoscaling:groupName"]
    group = client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    return [(f"autoscaling:{operation}", group, {})]


def compare(operator, value, wanted):
    if operator.startswith(("Arn", "StringLike")):
        return fnmatchcase(value, wanted)
    if operator == "StringEquals":
        return value == wanted
    raise AssertionError(f"no evaluation here for the condition operator {operator}")


def condition_holds(condition, context):
    for operator, tests in (condition or {}).items():
        for key, wanted in tests.items():
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if operator.startswith("ForAllValues:"):
                base = operator.split(":", 1)[1]
                if not all(any(compare(base, value, item) for item in wanted) for value in context.get(key, [])):
                    return False
                continue
            base = operator.removesuffix("IfExists")
            if key not in context:
                if operator.endswith("IfExists"):
                    continue
                return False
            if not any(compare(base, context[key], item) for item in wanted):
                return False
    return True


def allowed(policy, action, resource, context):
    """Whether an Allow statement of `policy` covers the action on the resource, its conditions met."""
    return any(action in statement["Action"]
               and any(fnmatchcase(resource, pattern) for pattern in statement["Resource"])
               and condition_holds(statement.get("Condition"), context)
               for statement in policy["Statement"])


def refused(policy, calls):
    """The requests among those of `calls` that `policy` does not allow, with the call they came from."""
    return [(call["operation"], action, resource, context) for call in calls
            for action, resource, context in requests(call) if not allowed(policy, action, resource, context)]


def used_actions(calls):
    return {action for call in calls for action, _, _ in requests(call)}


def granted_actions(policy):
    return {action for statement in policy["Statement"] for action in statement["Action"]}
