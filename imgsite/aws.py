"""boto3 clients for the configured AWS: the real one, or the local moto server."""
from functools import cache

import boto3
from botocore.config import Config
from django.conf import settings


@cache
def client(service):
    """One client per service and process; boto3 clients are thread-safe."""
    return boto3.client(
        service,
        region_name=settings.AWS_REGION,
        endpoint_url=settings.AWS_ENDPOINT_URL or None,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, signature_version="s3v4"
                      if service == "s3" else None),
    )


def queue_url(name):
    """The queue's URL: from settings when given, else looked up once per process (it never
    changes), rather than on every autoscaler pass."""
    if name == settings.CLASSIFY_QUEUE and settings.CLASSIFY_QUEUE_URL:
        return settings.CLASSIFY_QUEUE_URL
    return looked_up_queue_url(name, settings.AWS_ENDPOINT_URL)


@cache
def looked_up_queue_url(name, endpoint):
    return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
