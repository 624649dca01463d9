"""Admin for operators: the worker fleet and the queue as the autoscaler sees them, read-only."""
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.utils import timezone

from classifier.admin import ReadOnlyAdmin
from imgsite.queue import queue_depth
from scaling.models import ScalingEvent, WorkerNode
from scaling.workload import busy_nodes, depth_in_images, open_images, recent_seconds_per_image, tasks_running

log = logging.getLogger(__name__)


def fleet_overview(now):
    """The numbers the autoscaler decides on; the queue depth is read live from SQS."""
    overview = {"open_images": open_images(), "seconds_per_image": None, "depth": None, "error": ""}
    try:
        overview["depth"] = depth_in_images(queue_depth(), overview["open_images"])
    except Exception as exc:  # the page must still render when SQS is unreachable
        log.warning("queue depth unavailable: %s", exc)
        overview["error"] = f"Queue depth unavailable: {exc}"
    overview["seconds_per_image"] = recent_seconds_per_image(now)
    overview["alive"] = WorkerNode.objects.alive(now, settings.WORKER_STALE_SECONDS).filter(
        stopped_at__isnull=True).count()
    overview["busy"] = len(busy_nodes(now))
    overview["events"] = list(ScalingEvent.objects.all()[:10])
    return overview


@admin.register(WorkerNode)
class WorkerNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "state", "tasks", "last_heartbeat", "started_at", "stopped_at"]
    list_filter = ["draining", "started_at"]
    search_fields = ["name"]
    change_list_template = "admin/scaling/workernode/change_list.html"

    @admin.display(description="State")
    def state(self, node):
        if node.stopped_at:
            return "stopped"
        if node.last_heartbeat < timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS):
            return "silent"
        if node.draining:
            return "draining"
        return "busy" if node.tasks else "idle"

    @admin.display(description="Tasks running", ordering="tasks")
    def tasks(self, node):
        return node.tasks

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tasks=tasks_running(timezone.now()))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "fleet": fleet_overview(timezone.now())}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(ScalingEvent)
class ScalingEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "backend", "visible", "in_flight", "booting", "running", "draining", "busy",
                    "target", "action", "reason", "dry_run", "failed"]
    list_filter = ["backend", "dry_run", "created_at"]
    search_fields = ["reason", "action", "error"]
    date_hierarchy = "created_at"

    @admin.display(description="Error", boolean=True)
    def failed(self, event):
        return bool(event.error)
