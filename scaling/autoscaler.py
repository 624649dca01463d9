"""One autoscaler pass: observe the queue and the fleet, decide with the pure policy, act, record.

The policy is fed exactly what the simulator feeds it (scaling/simulate.py): messages, not
images; booting, running and busy nodes; the measured seconds per image and boot time; recent
uploads; and the images waiting in the outbox, which the queue's depth does not show. Each
pass writes one ScalingEvent holding that Reading, so any run can be replayed
through the same bookkeeping, and a restarted autoscaler rebuilds its memory from them.
"""
import json
import logging
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max

from classifier.models import Image
from imgsite.queue import queue_depth
from scaling.fleets import BOOTING, DRAINING, RUNNING, worker_rows
from scaling.models import ScalingEvent
from scaling.policy import (
    Controller,
    PolicySettings,
    Reading,
    launch_count,
    next_pass_at,
    nodes_to_retire,
)
from scaling.workload import busy_nodes, open_images, outbox_images, recent_seconds_per_image

log = logging.getLogger(__name__)

# A worker that reports later than this after its launch restarted, rather than booted slowly.
LONGEST_BOOT = timedelta(minutes=30)


def policy_settings(min_nodes=None, max_nodes=None, interval=None):
    return PolicySettings(
        min_nodes=settings.AUTOSCALE_MIN_NODES if min_nodes is None else min_nodes,
        max_nodes=settings.AUTOSCALE_MAX_NODES if max_nodes is None else max_nodes,
        max_step=settings.AUTOSCALE_MAX_STEP,
        max_retire_step=settings.AUTOSCALE_MAX_RETIRE_STEP,
        boot_seconds=settings.AUTOSCALE_BOOT_SECONDS,
        interval_seconds=settings.AUTOSCALE_INTERVAL if interval is None else interval,
        busy_interval_seconds=settings.AUTOSCALE_BUSY_INTERVAL,
        slots_per_node=settings.WORKER_CONCURRENCY,
        images_per_message=settings.IMAGES_PER_MESSAGE,
        default_seconds_per_image=settings.AUTOSCALE_SECONDS_PER_IMAGE,
        acceptable_latency_seconds=settings.AUTOSCALE_ACCEPTABLE_LATENCY,
        rate_window_seconds=settings.AUTOSCALE_RATE_WINDOW,
        idle_hold_seconds=settings.AUTOSCALE_IDLE_HOLD_SECONDS,
        recurrence_seconds=settings.AUTOSCALE_RECURRENCE_SECONDS,
    )


def recent_arrivals(now, window):
    """(images accepted for classification within `window` seconds, when the latest was).
    An image whose result was reused at upload is no work, so it does not count."""
    since = now - timedelta(seconds=window)
    found = Image.objects.filter(queued_at__gte=since, reused_from__isnull=True).aggregate(
        count=Count("id"), last=Max("queued_at"))
    return found["count"], found["last"]


def measured_boot_seconds(nodes, rows):
    """Median seconds from launch to the worker's first report, over the nodes that have one."""
    boots = [(rows[node.id].started_at - node.launched_at).total_seconds() for node in nodes
             if node.id in rows and timedelta(0) <= rows[node.id].started_at - node.launched_at <= LONGEST_BOOT]
    return statistics.median(boots) if boots else None


def epoch(moment):
    return moment.timestamp() if moment else None


@dataclass
class Look:
    """One observation: the policy's Reading, and the nodes and busy set the actor works on."""

    reading: Reading
    nodes: list
    busy: set

    def count(self, state):
        return sum(1 for node in self.nodes if node.state == state)


def observe(fleet, now, policy):
    nodes = fleet.list()
    depth = queue_depth()
    capacity = [node for node in nodes if node.state in (BOOTING, RUNNING)]
    busy = busy_nodes(now) & {node.id for node in capacity}
    arrived, last_arrival = recent_arrivals(now, policy.rate_window_seconds)
    last_finished = Image.objects.aggregate(last=Max("finished_at"))["last"]
    rows = worker_rows(node.id for node in nodes)
    reading = Reading(
        visible=depth["visible"], in_flight=depth["in_flight"], delayed=depth["delayed"], outbox=outbox_images(),
        open_images=open_images(),
        booting_ages=tuple(sorted((now - node.launched_at).total_seconds() for node in nodes
                                  if node.state == BOOTING)),
        running=sum(node.state == RUNNING for node in nodes), busy=len(busy),
        draining=sum(node.state == DRAINING for node in nodes),
        seconds_per_image=recent_seconds_per_image(now),
        boot_seconds=measured_boot_seconds(nodes, rows),
        arrived=arrived, last_arrival_at=epoch(last_arrival), last_finished_at=epoch(last_finished),
    )
    return Look(reading, nodes, busy)


def act(fleet, look, target, policy, dry_run, surge=0):
    """Launch or retire towards `target`; also push along drains already under way."""
    capacity = look.count(BOOTING) + look.count(RUNNING)
    actions, chosen = [], []
    if target > capacity:
        count = launch_count(target, capacity, look.count(DRAINING), policy.max_nodes, surge)
        launched = [] if dry_run or not count else fleet.launch(count)
        if count:
            actions.append(f"launch {count}" + (f": {', '.join(launched)}" if launched else ""))
        if count < target - capacity:
            actions.append(f"{target - capacity - count} held back: booting + running + draining at max")
    elif target < capacity:
        chosen = nodes_to_retire(look.nodes, look.busy, capacity - target)
        if chosen:
            actions.append(f"retire {', '.join(chosen)}")
        if len(chosen) < capacity - target:
            actions.append(f"{capacity - target - len(chosen)} busy node(s) kept")
    retiring = chosen + [node.id for node in look.nodes if node.state == DRAINING]
    if retiring and not dry_run:
        fleet.retire(retiring)
    return "; ".join(actions) or "nothing"


def stored(reading):
    """The Reading as the JSON the event keeps (tuples become lists, as a round trip would)."""
    return json.loads(json.dumps(asdict(reading)))


def reading_from(stored_reading):
    return Reading(**{**stored_reading, "booting_ages": tuple(stored_reading.get("booting_ages", ()))})


def record(backend, look, decision, action, now, dry_run):
    """One ScalingEvent per pass; a pass identical to the last row (same reading, same decision,
    nothing done) only counts on it, so idle hours do not push real launches out of sight."""
    r = look.reading
    event = ScalingEvent(
        created_at=now, last_seen_at=now, backend=backend, visible=r.visible, in_flight=r.in_flight,
        delayed=r.delayed, open_images=r.open_images, booting=len(r.booting_ages), running=r.running,
        draining=r.draining, busy=r.busy, seconds_per_image=r.seconds_per_image, arrived=r.arrived,
        reading=stored(r), target=decision.target, reason=decision.reason[:255], action=action[:255],
        dry_run=dry_run,
    )
    latest = ScalingEvent.objects.filter(backend=backend).first()
    if latest is not None and latest.same_as(event):
        latest.fold(now)
        return latest
    event.save()
    return event


def record_failure(backend, now, error, dry_run):
    return ScalingEvent.objects.create(created_at=now, last_seen_at=now, backend=backend, reason="pass failed",
                                       action="nothing", dry_run=dry_run, error=error)


def passes(event):
    """The moments of the passes a row stands for: a folded row's first and last are enough,
    since the passes between saw and decided the same."""
    last = event.last_seen_at or event.created_at
    return [event.created_at] if last == event.created_at else [event.created_at, last]


def replay(events, controller):
    """Decide the recorded passes again through `controller`, the bookkeeping the live loop and
    the simulator share: yields (event, decision) per pass, failed passes skipped."""
    for event in events:
        if event.error:
            continue
        for moment in passes(event):
            _, decision = controller.decide(reading_from(event.reading), moment.timestamp())
            yield event, decision


def history_from_events(now, policy):
    """Rebuild the policy's memory after a restart from the recent events (dry runs and failed
    passes left out), exactly as the live loop built it."""
    controller = Controller(policy)
    for _ in replay(ScalingEvent.objects.history(now - timedelta(seconds=policy.memory_seconds)), controller):
        pass
    return controller.history


def run_pass(fleet, backend, controller: Controller, now: datetime, dry_run=False, started=None, surge=0):
    """Observe, decide, act, record. Returns (event, when to pass next, as a datetime)."""
    look = observe(fleet, now, controller.settings)
    obs, decision = controller.decide(look.reading, now.timestamp())
    action = act(fleet, look, decision.target, controller.settings, dry_run, surge)
    event = record(backend, look, decision, action, now, dry_run)
    r = look.reading
    log.info("messages=%d/%d/%d nodes=%d/%d/%d busy=%d → target %d (%s); %s", r.visible, r.in_flight, r.delayed,
             len(r.booting_ages), r.running, r.draining, r.busy, decision.target, decision.reason, action)
    then = next_pass_at(now.timestamp(), (started or now).timestamp(), obs, decision, controller.settings)
    return event, now + timedelta(seconds=then - now.timestamp())

