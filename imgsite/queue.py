"""The classify queue's depth, as SQS counts it: messages visible, in flight and delayed."""
from django.conf import settings

from imgsite.aws import client, queue_url

DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def queue_depth(name=None):
    """Messages visible, in flight (received, not yet deleted) and delayed."""
    url = queue_url(name or settings.CLASSIFY_QUEUE)
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES.values()))
    return {key: int(attributes["Attributes"].get(attr, 0)) for key, attr in DEPTH_ATTRIBUTES.items()}
