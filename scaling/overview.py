"""The queue and the fleet as the autoscaler sees them: one function behind the admin's worker-nodes
page, `manage.py fleet` and /metrics, so that they cannot disagree."""
import logging
from datetime import timedelta

from django.conf import settings

from imgsite.queue import queue_depth
from scaling.models import ScalingEvent, WorkerNode
from scaling.workload import depth_in_images, live_claims, open_images, outbox_images, recent_seconds_per_image

log = logging.getLogger(__name__)

NODE_STATES = ("idle", "busy", "draining", "silent", "stopped")
EVENT_FIELDS = ("created_at", "backend", "visible", "in_flight", "delayed", "booting", "running", "draining", "busy",
                "target", "action", "reason", "dry_run", "error")


def node_state(node, now, tasks):
    """stopped, silent (no heartbeat for WORKER_STALE_SECONDS), draining, busy (running `tasks`)
    or idle."""
    if node.stopped_at:
        return "stopped"
    if node.last_heartbeat < now - timedelta(seconds=settings.WORKER_STALE_SECONDS):
        return "silent"
    if node.draining:
        return "draining"
    return "busy" if tasks else "idle"


def fleet_overview(now, events=10):
    """The numbers the autoscaler decides on (the queue's depth is read live from SQS), the nodes
    that have not stopped, and its latest decisions. Never raises for an unreachable SQS: the
    page must still render, and `error` says what is missing."""
    overview = {"now": now, "open_images": open_images(), "outbox": outbox_images(), "depth": None,
                "messages": None, "error": "", "images_per_message": settings.IMAGES_PER_MESSAGE,
                "slots": settings.WORKER_CONCURRENCY}
    try:
        overview["messages"] = queue_depth()
        overview["depth"] = depth_in_images(overview["messages"], overview["open_images"])
    except Exception as exc:
        log.warning("queue depth unavailable: %s", exc)
        overview["error"] = f"Queue depth unavailable: {exc}"
    overview["seconds_per_image"] = recent_seconds_per_image(now)
    tasks = live_claims(now)
    overview["nodes"] = [
        {"name": node.name, "state": node_state(node, now, tasks.get(node.name, 0)),
         "running_tasks": tasks.get(node.name, 0),
         "heartbeat_age": round((now - node.last_heartbeat).total_seconds(), 1), "started_at": node.started_at}
        for node in WorkerNode.objects.filter(stopped_at__isnull=True)
    ]
    overview["alive"] = sum(node["state"] in ("idle", "busy", "draining") for node in overview["nodes"])
    overview["busy"] = len(tasks)
    overview["events"] = list(ScalingEvent.objects.all()[:events])
    return overview


def overview_json(overview):
    """The overview with plain JSON values: ISO dates, and each event's fields by name."""

    def plain(value):
        return value.isoformat() if hasattr(value, "isoformat") else value

    return {
        **{key: plain(value) for key, value in overview.items() if key not in ("nodes", "events")},
        "nodes": [{key: plain(value) for key, value in node.items()} for node in overview["nodes"]],
        "events": [{field: plain(getattr(event, field)) for field in EVENT_FIELDS} for event in overview["events"]],
    }
