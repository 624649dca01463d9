"""The workers' IAM role and instance profile, with exactly the permissions a worker uses.

A worker reads originals and writes thumbnails in the image bucket, consumes (and, for
retries, sends to) the classify queue, and reads its secrets from SSM Parameter Store.
Nothing else: the web tier and the autoscaler run with their own credentials.
"""
import json
from urllib.parse import unquote

from botocore.exceptions import ClientError
from django.conf import settings

from imgsite.aws import client

POLICY_NAME = "imgsite-worker"
ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}
# What a worker calls with predefined queues (CLASSIFY_QUEUE_URL): receive, delete when done,
# change visibility (kept hidden while the task runs), send (a task's retries, and images from
# the outbox), and read the queue's attributes (its redrive policy, its size).
QUEUE_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
]


def caller_account():
    """(partition, account id) of the credentials in use: where the role will live."""
    arn = client("sts").get_caller_identity()["Arn"]
    _, partition, _, _, account, _ = arn.split(":", 5)
    return partition, account


def worker_policy(partition, account):
    """The worker role's only policy document."""
    region = settings.AWS_REGION
    bucket = f"arn:{partition}:s3:::{settings.IMAGE_BUCKET}"
    queue = f"arn:{partition}:sqs:{region}:{account}:{settings.CLASSIFY_QUEUE}"
    parameters = f"arn:{partition}:ssm:{region}:{account}:parameter{settings.SSM_PARAMETER_PREFIX.rstrip('/')}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadImages", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"{bucket}/images/*"]},
            {"Sid": "WriteThumbnails", "Effect": "Allow", "Action": ["s3:PutObject"],
             "Resource": [f"{bucket}/images/*/thumbnail.jpg"]},
            # Without it S3 answers 403, not 404, for a missing key, and the worker fails an image
            # whose original is gone only on a 404 (imgsite.storage.ImageStorage.read).
            {"Sid": "TellMissingKeys", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket]},
            {"Sid": "ConsumeTasks", "Effect": "Allow", "Action": QUEUE_ACTIONS, "Resource": [queue]},
            # Access to a path covers the parameters under it. SecureStrings under the AWS managed
            # key aws/ssm need no kms:Decrypt here; a customer managed key would.
            {"Sid": "ReadSecrets", "Effect": "Allow", "Action": ["ssm:GetParametersByPath"], "Resource": [parameters]},
        ],
    }


def missing(exc):
    return exc.response["Error"]["Code"] in ("NoSuchEntity", "NoSuchEntityException")


def found_or_none(call, **kwargs):
    """The answer of an IAM Get* call, or None when the entity does not exist."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        if missing(exc):
            return None
        raise


def current_role(name):
    answer = found_or_none(client("iam").get_role, RoleName=name)
    return answer and answer["Role"]


def current_policy(role, policy_name):
    answer = found_or_none(client("iam").get_role_policy, RoleName=role, PolicyName=policy_name)
    return answer and answer["PolicyDocument"]


def as_document(value):
    """IAM returns documents decoded, or as URL-encoded JSON from some endpoints."""
    if isinstance(value, str):
        return json.loads(unquote(value))
    return value


def ensure_worker_role(name, policy, dry_run=False):
    iam = client("iam")
    changes = []
    role = current_role(name)
    if role is None:
        changes.append(f"create IAM role {name} for EC2")
        if not dry_run:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ASSUME_ROLE_POLICY),
                            Description="imgsite workers: read images, write thumbnails, use the queue")
    elif as_document(role["AssumeRolePolicyDocument"]) != ASSUME_ROLE_POLICY:
        changes.append(f"set the trust policy of IAM role {name}")
        if not dry_run:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(ASSUME_ROLE_POLICY))
    existing = current_policy(name, POLICY_NAME) if role else None
    if existing is None or as_document(existing) != policy:
        changes.append(f"{'set' if existing else 'add'} policy {POLICY_NAME} on IAM role {name}")
        if not dry_run:
            iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
    return changes


def current_instance_profile(name):
    answer = found_or_none(client("iam").get_instance_profile, InstanceProfileName=name)
    return answer and answer["InstanceProfile"]


def ensure_instance_profile(name, role, dry_run=False):
    iam = client("iam")
    changes = []
    profile = current_instance_profile(name)
    if profile is None:
        changes.append(f"create instance profile {name}")
        if not dry_run:
            iam.create_instance_profile(InstanceProfileName=name)
    roles = [attached["RoleName"] for attached in (profile or {}).get("Roles", [])]
    if roles != [role]:
        for other in roles:
            changes.append(f"remove IAM role {other} from instance profile {name}")
            if not dry_run:
                iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=other)
        changes.append(f"put IAM role {role} in instance profile {name}")
        if not dry_run:
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    return changes


def ensure_worker_identity(name, dry_run=False):
    """The role and its instance profile, both called `name`; returns the changes."""
    policy = worker_policy(*caller_account())
    return ensure_worker_role(name, policy, dry_run) + ensure_instance_profile(name, name, dry_run)


def delete_worker_identity(name, dry_run=False):
    """Remove the instance profile and the role, if they exist; returns the changes."""
    iam = client("iam")
    changes = []
    profile = current_instance_profile(name)
    if profile is not None:
        changes.append(f"delete instance profile {name}")
        if not dry_run:
            for attached in profile.get("Roles", []):
                iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=attached["RoleName"])
            iam.delete_instance_profile(InstanceProfileName=name)
    if current_role(name) is not None:
        changes.append(f"delete IAM role {name}")
        if not dry_run:
            for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
            iam.delete_role(RoleName=name)
    return changes
