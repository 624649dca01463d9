"""Observing the classify queue: its depth in messages, converted to images."""
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


def images_per_message(open_images, messages):
    """A message carries up to IMAGES_PER_MESSAGE images; estimate the mean from the database."""
    if not messages:
        return 1.0
    return min(max(open_images / messages, 1.0), float(settings.IMAGES_PER_MESSAGE))


def depth_in_images(depth, open_images):
    """Scale message counts to image counts, the autoscaler's unit of work."""
    ratio = images_per_message(open_images, sum(depth.values()))
    return {key: round(count * ratio) for key, count in depth.items()}
