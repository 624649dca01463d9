"""What every fleet backend reports: nodes in three states, known to the database once they report."""
from dataclasses import dataclass
from datetime import datetime

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


def worker_rows(node_ids):
    """The WorkerNode rows of these nodes, by name: a node has one once its worker has reported."""
    return WorkerNode.objects.in_bulk(list(node_ids), field_name="name")


def worker_state(node_id, rows, since):
    """A started node is booting until its worker reports, and draining once asked to drain."""
    row = rows.get(node_id)
    if since or (row and row.draining):
        return DRAINING
    return RUNNING if row and row.stopped_at is None else BOOTING
