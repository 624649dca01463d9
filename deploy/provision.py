"""Create the bucket (or repair an existing one's posture: deploy/bucket.py), the queue and its
dead-letter queue from settings, idempotently; optionally each tier's IAM role (deploy/iam.py),
the workers' launch template and Auto Scaling group, and the workers' PostgreSQL role
(deploy/database_roles.py).

Each `ensure_*` function compares what exists with what settings ask for and returns
a list of the changes it made (or would make, with dry_run), so a second run reports none.
`teardown` removes the same things, newest first, and reports what it removed.
"""
import json

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from deploy.bucket import delete_bucket, ensure_bucket
from deploy.database_roles import drop_worker_database_role, ensure_worker_database_role
from deploy.iam import (
    autoscaler_role_name,
    caller_account,
    delete_identity,
    ensure_tier_identities,
    ensure_worker_identity,
    web_role_name,
    worker_role_name,
)
from deploy.launch import (
    delete_auto_scaling_group,
    delete_launch_template,
    ensure_auto_scaling_group,
    ensure_launch_template,
    launch_template_data,
    worker_ami,
)
from deploy.userdata import encoded_user_data
from imgsite.aws import client


def find_queue_url(name):
    try:
        return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" in exc.response["Error"]["Code"]:
            return None
        raise


def ensure_queue(name, attributes, dry_run=False):
    """Create the queue, or bring the attributes we manage up to date. Returns (url, changes)."""
    sqs = client("sqs")
    url = find_queue_url(name)
    if url is None:
        if dry_run:
            return None, [f"create queue {name}"]
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return url, [f"create queue {name}"]
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    stale = {key: value for key, value in attributes.items() if not same_attribute(current.get(key), value)}
    if stale and not dry_run:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=stale)
    return url, [f"set {key} on queue {name}" for key in sorted(stale)]


def same_attribute(current, wanted):
    if current is None:
        return False
    if wanted.startswith("{"):  # SQS hands back maxReceiveCount as a number, though it is sent as a string
        return as_strings(json.loads(current)) == as_strings(json.loads(wanted))
    return str(current) == str(wanted)


def as_strings(document):
    return {key: str(value) for key, value in document.items()}


def queue_arn(url, name):
    if url is None:  # dry run before creation: a placeholder that names the queue
        return f"arn:aws:sqs:{settings.AWS_REGION}:<account>:{name}"
    return client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_queues(dry_run=False):
    dlq_url, changes = ensure_queue(settings.DEAD_LETTER_QUEUE, {"MessageRetentionPeriod": "1209600"}, dry_run)
    redrive = json.dumps({
        "deadLetterTargetArn": queue_arn(dlq_url, settings.DEAD_LETTER_QUEUE),
        "maxReceiveCount": str(settings.MAX_RECEIVE_COUNT),
    })
    _, more = ensure_queue(settings.CLASSIFY_QUEUE, {
        "VisibilityTimeout": str(settings.SQS_VISIBILITY_TIMEOUT),
        "ReceiveMessageWaitTimeSeconds": str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["wait_time_seconds"]),
        "RedrivePolicy": redrive,
    }, dry_run)
    return changes + more


def launch_template_name():
    name = settings.EC2_LAUNCH_TEMPLATE or settings.FLEET_NAME
    if name.startswith("lt-"):
        raise ImproperlyConfigured("provisioning names the launch template: set EC2_LAUNCH_TEMPLATE to a name")
    return name


def worker_queue_url():
    """The classify queue's URL for the workers' user data; in a dry run before it exists, the URL it will have."""
    url = settings.CLASSIFY_QUEUE_URL or find_queue_url(settings.CLASSIFY_QUEUE)
    if url:
        return url
    _, account = caller_account()
    return f"https://sqs.{settings.AWS_REGION}.amazonaws.com/{account}/{settings.CLASSIFY_QUEUE}"


def fleet_launch_template_arn(dry_run=False, creating=False):
    """For the ec2 backend, the ARN of the template it launches from (EC2_LAUNCH_TEMPLATE, else
    FLEET_NAME), which the autoscaler's role names: by id, so it must exist first. None otherwise."""
    if settings.AUTOSCALE_BACKEND != "ec2":
        return None
    template = settings.EC2_LAUNCH_TEMPLATE or settings.FLEET_NAME
    key = "LaunchTemplateIds" if template.startswith("lt-") else "LaunchTemplateNames"
    try:
        found = client("ec2").describe_launch_templates(**{key: [template]})["LaunchTemplates"]
    except ClientError as exc:
        if "NotFound" not in exc.response["Error"]["Code"]:
            raise
        found = []
    partition, account = caller_account()
    if found:
        template_id = found[0]["LaunchTemplateId"]
    elif dry_run and creating:  # made by this very run
        template_id = f"<id of {template}>"
    else:
        raise ImproperlyConfigured(f"the autoscaler's role names the launch template it launches from, and there is "
                                   f"no launch template {template}: add --with-launch-template")
    return f"arn:{partition}:ec2:{settings.AWS_REGION}:{account}:launch-template/{template_id}"


def provision(dry_run=False, *, iam=False, launch_template=False, asg=False, db_roles=False, ami_id=None):
    """Everything the pipeline needs, plus the chosen infrastructure; returns the list of changes.

    The workers' role comes before the template (which names its instance profile), the other
    tiers' roles after it (the autoscaler's names the template's id)."""
    changes = ensure_bucket(settings.IMAGE_BUCKET, dry_run) + ensure_queues(dry_run)
    if iam:
        changes += ensure_worker_identity(worker_role_name(), dry_run)
    if launch_template or asg:  # the group launches from the template
        data = launch_template_data(
            worker_ami(ami_id), worker_role_name(), encoded_user_data(worker_queue_url()))
        changes += ensure_launch_template(launch_template_name(), data, dry_run)
    if asg:
        changes += ensure_auto_scaling_group(settings.ASG_NAME, launch_template_name(), dry_run)
    if iam:
        changes += ensure_tier_identities(fleet_launch_template_arn(dry_run, launch_template or asg), dry_run)
    if db_roles:
        changes += ensure_worker_database_role(dry_run)
    return changes


def delete_queue(name, dry_run=False):
    url = find_queue_url(name)
    if url is None:
        return []
    if not dry_run:
        client("sqs").delete_queue(QueueUrl=url)
    return [f"delete queue {name}"]


def teardown(dry_run=False, *, iam=False, launch_template=False, asg=False, db_roles=False):
    """Remove what `provision` with the same options creates, in reverse order; returns the changes."""
    changes = []
    if db_roles:
        changes += drop_worker_database_role(dry_run)
    if iam:
        changes += delete_identity(autoscaler_role_name(), dry_run) + delete_identity(web_role_name(), dry_run)
    if asg:
        changes += delete_auto_scaling_group(settings.ASG_NAME, dry_run)
    if launch_template:
        changes += delete_launch_template(launch_template_name(), dry_run)
    if iam:
        changes += delete_identity(worker_role_name(), dry_run)
    changes += delete_queue(settings.CLASSIFY_QUEUE, dry_run) + delete_queue(settings.DEAD_LETTER_QUEUE, dry_run)
    return changes + delete_bucket(settings.IMAGE_BUCKET, dry_run)
