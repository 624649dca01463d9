"""Admin for operators: the worker fleet and the queue as the autoscaler sees them, read-only."""
from django.contrib import admin
from django.utils import timezone

from classifier.admin import ReadOnlyAdmin
from scaling.models import ScalingEvent, WorkerNode
from scaling.overview import fleet_overview, node_state


@admin.register(WorkerNode)
class WorkerNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "state", "running_tasks", "current_task", "last_heartbeat", "started_at", "stopped_at"]
    list_filter = ["draining", "started_at"]
    search_fields = ["name", "current_task"]
    change_list_template = "admin/scaling/workernode/change_list.html"

    @admin.display(description="State")
    def state(self, node):
        return node_state(node, timezone.now())

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
