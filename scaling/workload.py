"""What the autoscaler measures of the work itself, from the images' rows and the queue's depth."""
from datetime import timedelta

from django.conf import settings

from classifier.models import Image


def open_images():
    """Images not yet finished: the work the queue's messages stand for."""
    return Image.objects.filter(status__in=[Image.Status.QUEUED, Image.Status.PROCESSING]).count()


def recent_seconds_per_image(now, window=timedelta(minutes=10), limit=2000):
    """Mean worker time per image lately. Images classified together share one claim
    (worker, started_at); a worker's groups may overlap (two tasks in threads), so its time
    is the union of its groups' spans, divided among their images. Images that no worker
    classified (results reused at upload) do not count."""
    rows = Image.objects.filter(status=Image.Status.DONE, finished_at__gte=now - window,
                                started_at__isnull=False).exclude(worker="")
    groups = {}
    for worker, started, finished in rows.values_list("worker", "started_at", "finished_at")[:limit]:
        end, count = groups.get((worker, started), (started, 0))
        groups[(worker, started)] = (max(end, finished), count + 1)
    if not groups:
        return None
    spans = {}
    for (worker, started), (end, _) in groups.items():
        spans.setdefault(worker, []).append((started, end))
    seconds = sum(busy_seconds(worker_spans) for worker_spans in spans.values())
    return max(seconds / sum(count for _, count in groups.values()), 0.001)


def busy_seconds(spans):
    """Seconds covered by the union of (start, end) datetime spans."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def images_per_message(open_count, messages):
    """A message carries up to IMAGES_PER_MESSAGE images; estimate the mean from the database."""
    if not messages:
        return 1.0
    return min(max(open_count / messages, 1.0), float(settings.IMAGES_PER_MESSAGE))


def depth_in_images(depth, open_count):
    """Scale message counts to image counts, the autoscaler's unit of work."""
    ratio = images_per_message(open_count, sum(depth.values()))
    return {key: round(count * ratio) for key, count in depth.items()}
