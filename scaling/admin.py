"""Admin for operators: the worker fleet and the queue as the autoscaler sees them, read-only."""
from django.contrib import admin
from django.utils import timezone

from classifier.admin import ReadOnlyAdmin
from scaling.models import ScalingEvent, WorkerNode
from scaling.overview import fleet_overview, node_state
from scaling.workload import tasks_running


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
