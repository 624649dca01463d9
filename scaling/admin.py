"""Admin for operators: the worker fleet and the queue as the autoscaler sees them, read-only."""
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from classifier.admin import ReadOnlyAdmin
from classifier.models import Image
from scaling.chart import fleet_chart
from scaling.fleets import busy_nodes
from scaling.models import Lease, ScalingEvent, WorkerNode
from scaling.queue import queue_depth

log = logging.getLogger(__name__)


CHART_HOURS = 3
CHART_FIELDS = ("created_at", "last_seen_at", "repeats", "error", "visible", "in_flight", "delayed", "open_images",
                "booting", "running", "draining", "target")


def fleet_overview(now):
    """The numbers the autoscaler decides on (the queue depth read live from SQS), and a chart
    of its recent passes."""
    overview = {"open_images": Image.objects.open_count(), "seconds_per_image": None, "depth": None, "error": "",
                "images_per_message": settings.IMAGES_PER_MESSAGE, "slots": settings.WORKER_CONCURRENCY}
    try:
        overview["depth"] = queue_depth()
    except Exception as exc:  # the page must still render when SQS is unreachable
        log.warning("queue depth unavailable: %s", exc)
        overview["error"] = f"Queue depth unavailable: {exc}"
    overview["seconds_per_image"] = Image.objects.recent_seconds_per_image(now)
    overview["alive"] = WorkerNode.objects.alive(now, settings.WORKER_STALE_SECONDS).filter(
        stopped_at__isnull=True).count()
    overview["busy"] = len(busy_nodes(now))
    overview["events"] = list(ScalingEvent.objects.all()[:10])
    since = now - timedelta(hours=CHART_HOURS)
    recent = ScalingEvent.objects.filter(dry_run=False).filter(
        Q(created_at__gte=since) | Q(last_seen_at__gte=since)).only(*CHART_FIELDS)
    overview["chart"], overview["chart_hours"] = fleet_chart(recent, now, CHART_HOURS), CHART_HOURS
    return overview



@admin.register(WorkerNode)
class WorkerNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "state", "running_tasks", "current_task", "last_heartbeat", "started_at", "stopped_at"]
    list_filter = ["draining", "started_at"]
    search_fields = ["name", "current_task"]
    change_list_template = "admin/scaling/workernode/change_list.html"

    @admin.display(description="State")
    def state(self, node):
        if node.stopped_at:
            return "stopped"
        if node.last_heartbeat < timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS):
            return "silent"
        if node.draining:
            return "draining"
        return "busy" if node.running_tasks else "idle"

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "fleet": fleet_overview(timezone.now())}
        return super().changelist_view(request, extra_context=extra_context)


class FailedFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return [("yes", "Failed"), ("no", "Succeeded")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


@admin.register(ScalingEvent)
class ScalingEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "repeats", "last_seen_at", "backend", "visible", "in_flight", "booting", "running",
                    "draining", "busy", "target", "action", "reason", "dry_run", "failed"]
    list_filter = [FailedFilter, "backend", "dry_run", "created_at"]
    search_fields = ["reason", "action", "error"]
    date_hierarchy = "created_at"

    @admin.display(description="Failed", boolean=True)
    def failed(self, event):
        return bool(event.error)


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "holder", "expires_at"]
