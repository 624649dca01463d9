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
    return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
