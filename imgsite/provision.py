"""Create the bucket, the queue and its dead-letter queue from settings, idempotently.

Each `ensure_*` function compares what exists with what settings ask for and returns
a list of the changes it made (or would make, with dry_run), so a second run reports none.
"""
import json

from botocore.exceptions import ClientError
from django.conf import settings

from imgsite.aws import client

PRIVATE_BUCKET = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def bucket_exists(name):
    try:
        client("s3").head_bucket(Bucket=name)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def ensure_bucket(name, dry_run=False):
    if bucket_exists(name):
        return []
    if not dry_run:
        s3 = client("s3")
        kwargs = {}
        if settings.AWS_REGION != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.AWS_REGION}
        s3.create_bucket(Bucket=name, **kwargs)
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=PRIVATE_BUCKET)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        })
    return [f"create private bucket {name}"]


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
    if wanted.startswith("{"):
        return json.loads(current) == json.loads(wanted)
    return str(current) == str(wanted)


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


def provision(dry_run=False):
    """Everything the pipeline needs; returns the list of changes."""
    return ensure_bucket(settings.IMAGE_BUCKET, dry_run) + ensure_queues(dry_run)
