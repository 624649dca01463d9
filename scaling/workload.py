"""What the autoscaler measures of the work itself, from the images' rows and the queue's depth."""
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Concat

from classifier.models import Image


def open_images():
    """Sent images not yet finished: the work the queue's messages stand for."""
    return Image.objects.filter(status__in=[Image.Status.QUEUED, Image.Status.PROCESSING],
                                sent_at__isnull=False).count()


def outbox_images():
    """Accepted images not yet sent (classifier.tasks.dispatch sends them as workers free up):
    backlog the queue's depth does not show."""
    return Image.objects.unsent().count()


def live_claims(now):
    """{node: tasks it runs now}. A worker extends its images' leases while its task runs, and
    stops when it dies or gives up at the task time limit: so a node whose process was killed
    stops counting as busy within SQS_VISIBILITY_TIMEOUT, and nothing can pin it busy forever."""
    claims = Image.objects.filter(status=Image.Status.PROCESSING, lease_expires_at__gt=now).order_by().values_list(
        "worker", "started_at").distinct()  # no ordering: it would make each image a row of its own
    tasks = {}
    for worker, _ in claims:
        node = worker.rsplit(":", 1)[0]
        tasks[node] = tasks.get(node, 0) + 1
    return tasks


def busy_nodes(now):
    """The nodes running a task now."""
    return set(live_claims(now))


def tasks_running(now):
    """live_claims() as an expression on WorkerNode rows: the tasks each node runs now."""
    claims = Image.objects.filter(status=Image.Status.PROCESSING, lease_expires_at__gt=now,
                                  worker__startswith=Concat(OuterRef("name"), Value(":")))
    count = claims.order_by().annotate(one=Value(1)).values("one").annotate(
        tasks=Count("started_at", distinct=True)).values("tasks")
    return Coalesce(Subquery(count, output_field=IntegerField()), 0)


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
