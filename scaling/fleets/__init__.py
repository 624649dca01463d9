"""Fleet backends. Each offers list(), launch(n) and retire(node_ids), and nothing more.

Retiring is always graceful: a node is first asked to drain (finish its task, then stop),
and only a drained node, or one that hangs past the drain timeout, is terminated.
"""
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from scaling.models import WorkerNode

BOOTING = "booting"
RUNNING = "running"
DRAINING = "draining"


@dataclass(frozen=True)
class Node:
    id: str
    state: str
    launched_at: datetime
    draining_since: datetime | None = None


def busy_nodes(now):
    """The names of the nodes running a task right now: the one place that knows how."""
    return WorkerNode.objects.busy_names(now, settings.WORKER_STALE_SECONDS)


def worker_rows(node_ids):
    """The WorkerNode rows of these nodes, by name: a node has one once its worker has reported."""
    return WorkerNode.objects.in_bulk(list(node_ids), field_name="name")


def worker_state(node_id, rows, since):
    """A started node is booting until its worker reports, and draining once asked to drain."""
    row = rows.get(node_id)
    if since or (row and row.draining):
        return DRAINING
    return RUNNING if row and row.stopped_at is None else BOOTING


def get_fleet(backend, max_nodes=None):
    """The backend named in settings or on the command line. The asg backend caps the group's
    desired capacity at `max_nodes`; the local one shares the cores among that many workers."""
    if backend == "local":
        from scaling.fleets.local import LocalFleet

        return LocalFleet(max_nodes=max_nodes)
    if backend == "ec2":
        from scaling.fleets.ec2 import Ec2Fleet

        return Ec2Fleet()
    if backend == "asg":
        from scaling.fleets.asg import AsgFleet

        return AsgFleet(max_nodes=max_nodes)
    raise ValueError(f"unknown fleet backend {backend!r}: use local, ec2 or asg")
