"""One autoscaler pass: observe the queue and the fleet, decide with the pure policy, act."""
import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Max

from classifier.models import Image
from imgsite.queue import queue_depth
from scaling.fleets import BOOTING, DRAINING, RUNNING
from scaling.models import ScalingEvent
from scaling.policy import History, PolicySettings, build_observation, desired_workers, update_history
from scaling.workload import busy_nodes, depth_in_images, open_images, outbox_images, recent_seconds_per_image

log = logging.getLogger(__name__)


def policy_settings(min_nodes=None, max_nodes=None):
    return PolicySettings(
        min_nodes=settings.AUTOSCALE_MIN_NODES if min_nodes is None else min_nodes,
        max_nodes=settings.AUTOSCALE_MAX_NODES if max_nodes is None else max_nodes,
        acceptable_latency_seconds=settings.AUTOSCALE_ACCEPTABLE_LATENCY,
        default_seconds_per_image=settings.AUTOSCALE_SECONDS_PER_IMAGE,
        max_step=settings.AUTOSCALE_MAX_STEP,
        stabilization_seconds=settings.AUTOSCALE_STABILIZATION_SECONDS,
        scale_to_zero_seconds=settings.AUTOSCALE_SCALE_TO_ZERO_SECONDS,
        tolerance=settings.AUTOSCALE_TOLERANCE,
    )


def history_from_events(now, window):
    """Rebuild the policy's memory from recent ScalingEvent rows after a restart."""
    events = ScalingEvent.objects.filter(created_at__gte=now - window, error="").order_by("created_at")
    targets = tuple((event.created_at.timestamp(), event.target) for event in events)
    busy = [e.created_at.timestamp() for e in events if e.visible + e.in_flight + e.delayed]
    return History(recent_targets=targets, last_nonempty_at=busy[-1] if busy else None)


@dataclass
class Snapshot:
    depth: dict
    nodes: list
    busy: set
    seconds_per_image: float | None
    last_finished_at: float | None

    def count(self, state):
        return sum(1 for node in self.nodes if node.state == state)


def observe(fleet, now):
    nodes = fleet.list()
    depth = depth_in_images(queue_depth(), open_images())
    depth["visible"] += outbox_images()  # accepted, not sent yet: backlog all the same
    busy = busy_nodes(now)
    last_finished = Image.objects.aggregate(last=Max("finished_at"))["last"]
    return Snapshot(depth, nodes, busy, recent_seconds_per_image(now),
                    last_finished.timestamp() if last_finished else None)


def nodes_to_retire(snapshot, count):
    """Idle running nodes first, then booting ones; a busy node is never chosen."""
    idle = [node for node in snapshot.nodes if node.state != DRAINING and node.id not in snapshot.busy]
    idle.sort(key=lambda node: (node.state != RUNNING, node.launched_at), reverse=False)
    return [node.id for node in idle[:count]]


def act(fleet, snapshot, target, dry_run):
    """Launch or retire towards `target`; also push along drains already under way."""
    capacity = snapshot.count(BOOTING) + snapshot.count(RUNNING)
    actions, chosen = [], []
    if target > capacity:
        launched = [] if dry_run else fleet.launch(target - capacity)
        actions.append(f"launch {target - capacity}" + (f": {', '.join(launched)}" if launched else ""))
    elif target < capacity:
        chosen = nodes_to_retire(snapshot, capacity - target)
        if chosen:
            actions.append(f"retire {', '.join(chosen)}")
        if len(chosen) < capacity - target:
            actions.append(f"{capacity - target - len(chosen)} busy node(s) protected")
    retiring = chosen + [node.id for node in snapshot.nodes if node.state == DRAINING]
    if retiring and not dry_run:
        fleet.retire(retiring)
    return "; ".join(actions) or "nothing"


def run_pass(fleet, backend, history, policy, now: datetime, dry_run=False):
    """Observe, decide, act; record a ScalingEvent and a log line. Returns the new history."""
    snapshot = observe(fleet, now)
    observation = build_observation(
        history, now=now.timestamp(), booting=snapshot.count(BOOTING), running=snapshot.count(RUNNING),
        seconds_per_image=snapshot.seconds_per_image, last_finished_at=snapshot.last_finished_at, **snapshot.depth,
    )
    decision = desired_workers(observation, policy)
    action = act(fleet, snapshot, decision.target, dry_run)
    event = ScalingEvent.objects.create(
        created_at=now, backend=backend, booting=observation.booting, running=observation.running,
        draining=snapshot.count(DRAINING), busy=len(snapshot.busy), seconds_per_image=snapshot.seconds_per_image,
        target=decision.target, reason=decision.reason[:255], action=action[:255], dry_run=dry_run,
        **snapshot.depth,
    )
    log.info("depth=%s nodes=%d/%d/%d busy=%d → target %d (%s); %s", snapshot.depth, event.booting,
             event.running, event.draining, event.busy, decision.target, decision.reason, action)
    return update_history(history, observation, policy)
