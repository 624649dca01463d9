"""GET /metrics: what an operator graphs, in Prometheus' text format, for operators only.

Every value is read at scrape time from the database (and the queue's depth from SQS), not
counted in process memory: the web tier runs several gunicorn processes on several hosts and
the workers run elsewhere, so in-process counters would each see a slice. Read from the rows,
any web process gives the whole picture, and needs no multiprocess directory.

Hence gauges, not counters: users delete images, so a row count can fall and would read as a
counter reset. Throughput, failures and latencies cover the images finished in the last
METRICS_WINDOW_SECONDS (the window moves with each scrape, so `x_recent / window` is a rate),
and latencies are gauge histograms of those rows: `histogram_quantile(0.95, ..._bucket)` reads
them directly, with no rate().
"""
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily

from classifier.models import Image
from imgsite.health import answers_any_host, operators_only
from imgsite.queue import queue_depth
from scaling.models import ScalingEvent, WorkerNode
from scaling.overview import NODE_STATES, node_state
from scaling.workload import depth_in_images, live_claims, open_images, outbox_images, recent_seconds_per_image

# Upper bounds in seconds: queued → finished spans a boot (minutes) when the fleet is at zero.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


def gauge(name, documentation, value=None, labels=(), samples=()):
    family = GaugeMetricFamily(name, documentation, value=value, labels=list(labels) if labels else None)
    for label_values, sample in samples:
        family.add_metric(list(label_values), sample)
    return family


def duration_histogram(name, documentation, rows, start_field, buckets):
    """A gauge histogram of finished_at - start_field over `rows`, counted in one query."""
    span = ExpressionWrapper(F("finished_at") - F(start_field), output_field=DurationField())
    counts = rows.annotate(span=span).aggregate(
        total=Count("pk"), sum=Sum("span"),
        **{f"le{index}": Count("pk", filter=Q(span__lte=timedelta(seconds=bound)))
           for index, bound in enumerate(buckets)},
    )
    pairs = [(str(float(bound)), counts[f"le{index}"]) for index, bound in enumerate(buckets)]
    pairs.append(("+Inf", counts["total"]))
    total_seconds = counts["sum"].total_seconds() if counts["sum"] else 0.0
    return GaugeHistogramMetricFamily(name, documentation, buckets=pairs, gsum_value=total_seconds)


def action_kind(event):
    """What a pass did, in a word: failed, launch, retire or nothing."""
    if event.error:
        return "failed"
    if event.action.startswith("launch"):
        return "launch"
    return "retire" if "retire" in event.action else "nothing"


class SiteCollector:
    """Collects every imgsite metric as of `now`."""

    def __init__(self, now):
        self.now = now
        self.since = now - timedelta(seconds=settings.METRICS_WINDOW_SECONDS)

    def collect(self):
        yield gauge("imgsite_metrics_window_seconds", "The window of the *_recent metrics and the histograms.",
                    settings.METRICS_WINDOW_SECONDS)
        yield from self.images()
        yield from self.queue()
        yield from self.workers()
        yield from self.autoscaler()

    def images(self):
        by_status = dict(Image.objects.order_by().values_list("status").annotate(count=Count("pk")))
        yield gauge("imgsite_images", "Images stored, by status.", labels=["status"],
                    samples=[((status,), by_status.get(status, 0)) for status in Image.Status.values])
        accepted = Image.objects.filter(queued_at__gte=self.since, requeues=0).count()
        yield gauge("imgsite_images_accepted_recent", "Images uploaded within the window.", accepted)
        finished = (Image.objects.filter(finished_at__gte=self.since, status__in=["done", "failed"]).order_by()
                    .values_list("status", "error_code").annotate(count=Count("pk")))
        yield gauge("imgsite_images_finished_recent",
                    "Images that ended done or failed within the window, by status and error code.",
                    labels=["status", "error_code"],
                    samples=[((status, code), count) for status, code, count in finished])
        # Images a worker classified (a reused result took no worker time, and would flatter both).
        by_worker = Image.objects.filter(finished_at__gte=self.since, status=Image.Status.DONE,
                                         started_at__isnull=False).exclude(worker="")
        yield duration_histogram("imgsite_image_latency_seconds",
                                 "Queued to done, for the images a worker finished within the window.",
                                 by_worker, "queued_at", LATENCY_BUCKETS)
        yield duration_histogram("imgsite_image_processing_seconds",
                                 "Claimed to done (fetch, decode, model, thumbnail of the image's whole group), "
                                 "for the images a worker finished within the window.",
                                 by_worker, "started_at", PROCESSING_BUCKETS)

    def queue(self):
        try:
            messages = queue_depth()
        except Exception:  # SQS down is news for the graph, not a failed scrape
            yield gauge("imgsite_queue_up", "1 when SQS answered this scrape.", 0)
            return
        yield gauge("imgsite_queue_up", "1 when SQS answered this scrape.", 1)
        yield gauge("imgsite_queue_messages", "Messages in the classify queue, as SQS counts them.", labels=["state"],
                    samples=[((state,), count) for state, count in messages.items()])
        images = depth_in_images(messages, open_images())
        yield gauge("imgsite_queue_images",
                    "Images waiting, as the autoscaler counts them: in visible, in flight and delayed messages, "
                    "and in the outbox (accepted, not yet sent).", labels=["state"],
                    samples=[*(((state,), count) for state, count in images.items()), (("outbox",), outbox_images())])

    def workers(self):
        nodes = list(WorkerNode.objects.filter(stopped_at__isnull=True))
        tasks = live_claims(self.now)
        states = [node_state(node, self.now, tasks.get(node.name, 0)) for node in nodes]
        yield gauge("imgsite_worker_nodes", "Worker nodes that have not stopped, by the state they report.",
                    labels=["state"], samples=[((state,), states.count(state)) for state in NODE_STATES[:-1]])
        yield gauge("imgsite_worker_running_tasks", "Tasks the reporting worker nodes are running.",
                    sum(tasks.get(node.name, 0) for node, state in zip(nodes, states) if state != "silent"))
        per_image = recent_seconds_per_image(self.now)
        if per_image is not None:
            yield gauge("imgsite_worker_seconds_per_image",
                        "Worker time per image lately, as the autoscaler measures it.", per_image)
        finished = (Image.objects.filter(finished_at__gte=self.since, status__in=["done", "failed"]).exclude(worker="")
                    .order_by().values_list("worker").annotate(count=Count("pk")))
        per_node = {}
        for worker, count in finished:
            node = worker.rpartition(":")[0] or worker
            per_node[node] = per_node.get(node, 0) + count
        yield gauge("imgsite_worker_images_recent", "Images each worker node finished within the window.",
                    labels=["node"], samples=[((node,), count) for node, count in sorted(per_node.items())])

    def autoscaler(self):
        latest = ScalingEvent.objects.first()
        if latest is not None:
            yield gauge("imgsite_autoscaler_last_pass_timestamp_seconds", "When the autoscaler last made a pass.",
                        latest.created_at.timestamp())
            yield gauge("imgsite_autoscaler_target_nodes", "The node count the autoscaler last decided on.",
                        latest.target)
            yield gauge("imgsite_autoscaler_nodes", "The fleet as the autoscaler last saw it, by state.",
                        labels=["state"], samples=[(("booting",), latest.booting), (("running",), latest.running),
                                                   (("draining",), latest.draining)])
        passes = {}
        for event in ScalingEvent.objects.filter(created_at__gte=self.since).only("action", "error"):
            passes[action_kind(event)] = passes.get(action_kind(event), 0) + 1
        yield gauge("imgsite_autoscaler_passes_recent", "Autoscaler passes within the window, by what they did.",
                    labels=["action"], samples=[((kind,), passes.get(kind, 0))
                                                for kind in ("launch", "retire", "nothing", "failed")])


def render(now):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SiteCollector(now))
    return generate_latest(registry)


@answers_any_host
@never_cache
@operators_only
def metrics(request):
    return HttpResponse(render(timezone.now()), content_type=CONTENT_TYPE_LATEST)
