"""Admin for operators: the worker fleet and the queue as the autoscaler sees them, read-only."""
from datetime import timedelta

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from classifier.admin import ReadOnlyAdmin
from scaling.chart import fleet_chart
from scaling.models import Lease, ScalingEvent, WorkerNode
from scaling.overview import fleet_overview, node_state
from scaling.workload import tasks_running

CHART_HOURS = 3
CHART_FIELDS = ("created_at", "last_seen_at", "repeats", "error", "visible", "in_flight", "delayed", "open_images",
                "booting", "running", "draining", "target")


def recent_chart(now, hours=CHART_HOURS):
    """The queue and the fleet over the last hours, drawn from the autoscaler's passes."""
    since = now - timedelta(hours=hours)
    recent = ScalingEvent.objects.filter(dry_run=False).filter(
        Q(created_at__gte=since) | Q(last_seen_at__gte=since)).only(*CHART_FIELDS)
    return fleet_chart(recent, now, hours)



@admin.register(WorkerNode)
class WorkerNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "state", "tasks", "last_heartbeat", "started_at", "stopped_at"]
    list_filter = ["draining", "started_at"]
    search_fields = ["name"]
    change_list_template = "admin/scaling/workernode/change_list.html"

    @admin.display(description="State")
    def state(self, node):
        return node_state(node, timezone.now(), node.tasks)

    @admin.display(description="Tasks running", ordering="tasks")
    def tasks(self, node):
        return node.tasks

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tasks=tasks_running(timezone.now()))

    def changelist_view(self, request, extra_context=None):
        now = timezone.now()
        extra_context = {**(extra_context or {}), "fleet": fleet_overview(now), "chart": recent_chart(now),
                         "chart_hours": CHART_HOURS}
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
