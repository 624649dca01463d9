"""Each tier's IAM role, with exactly the permissions its code uses, on exactly its own resources.

- The workers (role and instance profile FLEET_NAME, or EC2_INSTANCE_PROFILE): read originals,
  write thumbnails (and delete those of images deleted meanwhile), consume the classify queue,
  read their two SSM parameters.
- The web tier (FLEET_NAME-web): store, sign and delete objects under images/, send to the
  classify queue. Nothing on EC2, the dead-letter queue or SSM.
- The autoscaler (FLEET_NAME-autoscaler): its fleet (EC2 instances tagged imgsite:fleet=FLEET_NAME,
  launched only from the provisioned launch template, or the Auto Scaling group ASG_NAME), the
  queue's depth and the outbox's sends, the dead-letter queue, the orphan sweep's list and
  deletes, and CloudWatch's backlog metric when AUTOSCALE_CLOUDWATCH_METRIC is on.

Each is a role for EC2 with one inline policy and an instance profile of the same name: one
host, one tier, one role (docs/deploy.md). tests/deploy/test_iam.py asserts each document and
lints it with parliament; test_*_permissions.py record the calls each tier really makes.
"""
import json
from urllib.parse import unquote

from botocore.exceptions import ClientError
from django.conf import settings

from imgsite.aws import client
from scaling.fleets.ec2 import DRAINING_TAG, FLEET_TAG

ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}
GROUP_TAG = "aws:autoscaling:groupName"  # Auto Scaling tags each instance of a group with its name
# The SSM parameters a worker reads (worker_ami/worker_env.py: PARAMETERS, tested equal). Nothing
# else under the prefix is readable by the role, whatever an operator puts there.
WORKER_PARAMETERS = ("DATABASE_URL", "SENTRY_DSN")
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
    """(partition, account id) of the credentials in use: where the roles will live."""
    arn = client("sts").get_caller_identity()["Arn"]
    _, partition, _, _, account, _ = arn.split(":", 5)
    return partition, account


def worker_role_name():
    """The workers' role and instance profile: EC2_INSTANCE_PROFILE (a name or an ARN), else FLEET_NAME."""
    profile = settings.EC2_INSTANCE_PROFILE or settings.FLEET_NAME
    return profile.rsplit("/", 1)[-1] if profile.startswith("arn:") else profile


def web_role_name():
    return f"{settings.FLEET_NAME}-web"


def autoscaler_role_name():
    return f"{settings.FLEET_NAME}-autoscaler"


def bucket_arn(partition):
    return f"arn:{partition}:s3:::{settings.IMAGE_BUCKET}"


def queue_arn(partition, account, name):
    return f"arn:{partition}:sqs:{settings.AWS_REGION}:{account}:{name}"


def statement(sid, actions, resources, condition=None):
    """One Allow statement; actions sorted, so that documents compare equal whatever the order."""
    item = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": list(resources)}
    if condition:
        item["Condition"] = condition
    return item


def document(statements):
    return {"Version": "2012-10-17", "Statement": statements}


def worker_policy(partition, account):
    """The worker role's only policy document."""
    bucket = bucket_arn(partition)
    prefix = settings.SSM_PARAMETER_PREFIX.rstrip("/")
    parameters = f"arn:{partition}:ssm:{settings.AWS_REGION}:{account}:parameter{prefix}"
    return document([
        statement("ReadImages", ["s3:GetObject"], [f"{bucket}/images/*"]),
        # Deleting: the thumbnail of an image its owner deleted while it was classified
        # (classifier.orphans.delete_thumbnails_of_vanished).
        statement("WriteThumbnails", ["s3:DeleteObject", "s3:PutObject"], [f"{bucket}/images/*/thumbnail.jpg"]),
        # Without it S3 answers 403, not 404, for a missing key, and the worker fails an image
        # whose original is gone only on a 404 (imgsite.storage.ImageStorage.read).
        statement("TellMissingKeys", ["s3:ListBucket"], [bucket]),
        statement("ConsumeTasks", QUEUE_ACTIONS, [queue_arn(partition, account, settings.CLASSIFY_QUEUE)]),
        # By name, not by path: the role reads these and nothing else under the prefix. SecureStrings
        # under the AWS managed key aws/ssm need no kms:Decrypt here; a customer managed key would.
        statement("ReadSecrets", ["ssm:GetParameters"], [f"{parameters}/{name}" for name in WORKER_PARAMETERS]),
    ])


def web_policy(partition, account):
    """The web tier's only policy document: uploads, presigned links and deletions under images/,
    and messages to the classify queue."""
    bucket = bucket_arn(partition)
    return document([
        # Put: uploads (through the web process, or presigned straight from the browser); get: the
        # presigned links it signs, and a reused thumbnail's existence check; delete: deleted images.
        statement("StoreImages", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [f"{bucket}/images/*"]),
        # The deep health check's HeadBucket; and a missing key answers 404, not 403.
        statement("CheckTheBucket", ["s3:ListBucket"], [bucket]),
        # The outbox's sends; the depth on /metrics, the admin and /healthz/deep. With the queue's
        # URL given (CLASSIFY_QUEUE_URL, required) neither kombu nor imgsite looks the queue up.
        statement("SendTasks", ["sqs:GetQueueAttributes", "sqs:SendMessage"],
                  [queue_arn(partition, account, settings.CLASSIFY_QUEUE)]),
    ])


def autoscaler_policy(partition, account, launch_template_arn=None, backend=None):
    """The autoscaler's only policy document, for its backend (AUTOSCALE_BACKEND): the ec2
    backend's launches name `launch_template_arn` (the provisioned template's ARN, by id)."""
    backend = backend or settings.AUTOSCALE_BACKEND
    bucket = bucket_arn(partition)
    statements = [
        # Observe: the depth. Act for the sweeper: send what the outbox holds (CLASSIFY_QUEUE_URL given).
        statement("UseTheQueue", ["sqs:GetQueueAttributes", "sqs:SendMessage"],
                  [queue_arn(partition, account, settings.CLASSIFY_QUEUE)]),
        # The sweeper fails the images of dead-lettered messages, then deletes them; it looks the
        # dead-letter queue up by name.
        statement("SweepDeadLetters", ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                  [queue_arn(partition, account, settings.DEAD_LETTER_QUEUE)]),
        # The orphan sweep lists images/ a page at a time and deletes what no row owns.
        statement("ListImages", ["s3:ListBucket"], [bucket], {"StringEquals": {"s3:prefix": ["images/"]}}),
        statement("DeleteOrphans", ["s3:DeleteObject"], [f"{bucket}/images/*"]),
    ]
    if backend == "ec2":
        statements += ec2_fleet_statements(partition, account, launch_template_arn)
    elif backend == "asg":
        statements += asg_fleet_statements(partition, account)
    if settings.AUTOSCALE_CLOUDWATCH_METRIC:
        statements.append(statement("PublishBacklog", ["cloudwatch:PutMetricData"], ["*"],
                                    {"StringEquals": {"cloudwatch:namespace": settings.CLOUDWATCH_NAMESPACE}}))
    return document(statements)


def ec2_fleet_statements(partition, account, launch_template_arn):
    """Launch from the template only, as the allowed type, tagged as this fleet; tag and terminate
    only instances of this fleet; pass only the workers' role, only to EC2."""
    if not launch_template_arn:
        raise ValueError("the ec2 backend's launches are limited to a launch template: give its ARN")
    ec2 = f"arn:{partition}:ec2:{settings.AWS_REGION}"
    instances = f"{ec2}:{account}:instance/*"
    ours = {"StringEquals": {f"aws:ResourceTag/{FLEET_TAG}": settings.FLEET_NAME}}
    return [
        # DescribeInstances has no resource-level permissions; the fleet filters on its tag.
        statement("SeeInstances", ["ec2:DescribeInstances"], ["*"]),
        # Every resource a launch touches, all named by the template; a key pair is not among them,
        # so none can be added. Only the instance has a type, and only it and its disks and network
        # interfaces take tags: hence IfExists (a launch tagged as another fleet, or of another type,
        # is refused).
        statement("LaunchWorkers", ["ec2:RunInstances"],
                  [instances, f"{ec2}::image/*", launch_template_arn, f"{ec2}:{account}:network-interface/*",
                   f"{ec2}:{account}:security-group/*", f"{ec2}:{account}:subnet/*", f"{ec2}:{account}:volume/*"],
                  {"ArnEquals": {"ec2:LaunchTemplate": launch_template_arn},
                   "StringEqualsIfExists": {"ec2:InstanceType": [settings.EC2_INSTANCE_TYPE],
                                            f"aws:RequestTag/{FLEET_TAG}": settings.FLEET_NAME}}),
        statement("TagAtLaunch", ["ec2:CreateTags"], [instances], {
            "StringEquals": {"ec2:CreateAction": "RunInstances", f"aws:RequestTag/{FLEET_TAG}": settings.FLEET_NAME},
            "ForAllValues:StringEquals": {"aws:TagKeys": [FLEET_TAG, "Name"]}}),
        statement("MarkDraining", ["ec2:CreateTags"], [instances], {
            **ours, "ForAllValues:StringEquals": {"aws:TagKeys": [DRAINING_TAG]}}),
        statement("TerminateOwnWorkers", ["ec2:TerminateInstances"], [instances], ours),
        statement("PassTheWorkerRole", ["iam:PassRole"], [f"arn:{partition}:iam::{account}:role/{worker_role_name()}"],
                  {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
    ]


def asg_fleet_statements(partition, account):
    """Size, protect and shrink the group ASG_NAME; mark its instances draining. The group
    launches with its own service-linked role: no PassRole, no RunInstances here."""
    instances = f"arn:{partition}:ec2:{settings.AWS_REGION}:{account}:instance/*"
    group = (f"arn:{partition}:autoscaling:{settings.AWS_REGION}:{account}:autoScalingGroup:*:"
             f"autoScalingGroupName/{settings.ASG_NAME}")
    return [
        # Neither describe call has resource-level permissions.
        statement("SeeInstances", ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"], ["*"]),
        statement("SizeTheGroup", ["autoscaling:SetDesiredCapacity", "autoscaling:SetInstanceProtection",
                                   "autoscaling:TerminateInstanceInAutoScalingGroup"], [group]),
        statement("MarkDraining", ["ec2:CreateTags"], [instances],
                  {"StringEquals": {f"aws:ResourceTag/{GROUP_TAG}": settings.ASG_NAME},
                   "ForAllValues:StringEquals": {"aws:TagKeys": [DRAINING_TAG]}}),
    ]


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


def act(changes, dry_run, change, call, **arguments):
    """Record `change`, and make it (`call(**arguments)`) unless this is a dry run."""
    changes.append(change)
    if not dry_run:
        call(**arguments)


def ensure_role(name, policy_name, policy, description, dry_run=False):
    """The role for EC2 called `name`, with `policy` as its inline policy `policy_name`."""
    iam = client("iam")
    changes = []
    role = current_role(name)
    if role is None:
        act(changes, dry_run, f"create IAM role {name} for EC2", iam.create_role, RoleName=name,
            AssumeRolePolicyDocument=json.dumps(ASSUME_ROLE_POLICY), Description=description)
    elif as_document(role["AssumeRolePolicyDocument"]) != ASSUME_ROLE_POLICY:
        act(changes, dry_run, f"set the trust policy of IAM role {name}", iam.update_assume_role_policy,
            RoleName=name, PolicyDocument=json.dumps(ASSUME_ROLE_POLICY))
    existing = current_policy(name, policy_name) if role else None
    if existing is None or as_document(existing) != policy:
        act(changes, dry_run, f"{'set' if existing else 'add'} policy {policy_name} on IAM role {name}",
            iam.put_role_policy, RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    return changes


def current_instance_profile(name):
    answer = found_or_none(client("iam").get_instance_profile, InstanceProfileName=name)
    return answer and answer["InstanceProfile"]


def ensure_instance_profile(name, role, dry_run=False):
    iam = client("iam")
    changes = []
    profile = current_instance_profile(name)
    if profile is None:
        act(changes, dry_run, f"create instance profile {name}", iam.create_instance_profile,
            InstanceProfileName=name)
    roles = [attached["RoleName"] for attached in (profile or {}).get("Roles", [])]
    if roles != [role]:
        for other in roles:
            act(changes, dry_run, f"remove IAM role {other} from instance profile {name}",
                iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=other)
        act(changes, dry_run, f"put IAM role {role} in instance profile {name}", iam.add_role_to_instance_profile,
            InstanceProfileName=name, RoleName=role)
    return changes


def ensure_identity(name, policy_name, policy, description, dry_run=False):
    """A role and its instance profile, both called `name`; returns the changes."""
    return (ensure_role(name, policy_name, policy, description, dry_run)
            + ensure_instance_profile(name, name, dry_run))


def ensure_worker_identity(name, dry_run=False):
    return ensure_identity(name, "imgsite-worker", worker_policy(*caller_account()),
                           "imgsite workers: read images, write thumbnails, use the queue", dry_run)


def ensure_tier_identities(launch_template_arn=None, dry_run=False):
    """The web tier's and the autoscaler's roles and instance profiles; returns the changes."""
    partition, account = caller_account()
    return (ensure_identity(web_role_name(), "imgsite-web", web_policy(partition, account),
                            "imgsite web tier: store and sign images, send tasks", dry_run)
            + ensure_identity(autoscaler_role_name(), "imgsite-autoscaler",
                              autoscaler_policy(partition, account, launch_template_arn),
                              "imgsite autoscaler: its own fleet, the queues, the orphan sweep", dry_run))


def delete_identity(name, dry_run=False):
    """Remove the instance profile and the role called `name`, if they exist; returns the changes."""
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
