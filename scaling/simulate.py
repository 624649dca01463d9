"""Replay an upload trace against a simulated SQS queue and fleet.

Pure Python (no Django, no boto3). Time advances event by event (upload,
boot finished, message finished, message visible again, decision), so short
service times are exact. The world is the real one's: an upload becomes
messages of up to `images_per_message` images; a running node takes up to
`slots_per_node` of them at once and finishes one image every
`seconds_per_image` when all its slots are busy; the controller reads what the
real observer reads (messages, booting/running/busy nodes, the measured
seconds per image, recent uploads) through the same `Controller`, and nodes
are retired as the real actor does: `nodes_to_retire()` picks idle ones,
booting nodes stop at once, a running one is asked to drain and is stopped by
a later pass once its worker has noticed and finished.

`seed` is the original controller, kept here for comparison only.
"""

import csv
import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from scaling.policy import (
    BOOTING,
    DRAINING,
    RUNNING,
    Controller,
    Decision,
    PolicySettings,
    Reading,
    launch_count,
    next_pass_at,
    nodes_to_retire,
)

POLICIES = ("imgsite", "seed")
RESULT_KEYS = (
    "policy", "instance_minutes", "floor_minutes", "cost_per_floor", "wait_mean", "wait_p50", "wait_p95", "wait_max",
    "interrupted", "unfinished", "launches", "unused_launches", "max_fleet", "utilization",
)
MEASURE_SECONDS = 600.0  # the real measurement's window for seconds per image

# Same-time events happen in this order. The decision comes first, so a message
# is only ever counted as interrupted if it really was mid-task.
TICK, DONE, READY, ARRIVE, REDELIVER = range(5)

# The original controller's caps: one node per visible message up to 15,
# and 17 once more than 15 messages are visible.
SEED_CAP = 15
SEED_BURST_CAP = 17


@dataclass(frozen=True)
class SimulationSettings:
    boot_seconds: float = 70.0
    seconds_per_image: float = 0.5  # node-seconds per image with every slot busy
    interval: float = 15.0
    slots_per_node: int = 2
    images_per_message: int = 16
    visibility_timeout: float = 300.0
    minimum_billed_seconds: float = 60.0  # EC2 bills at least a minute per launch
    drain_notice_seconds: float = 5.0  # a worker sees the drain flag on its next heartbeat
    # After the trace ends, stop if the work is still not done: the seed never finishes a message
    # that takes longer than its interval, since it kills busy nodes whenever nothing is visible.
    give_up_after: float = 3600.0


def policy_for(sim: SimulationSettings, **changes) -> PolicySettings:
    """The policy as the real loop would configure it for this simulated cloud."""
    return PolicySettings(**{
        "boot_seconds": sim.boot_seconds, "interval_seconds": sim.interval,
        "slots_per_node": sim.slots_per_node, "images_per_message": sim.images_per_message,
        **changes,
    })


def seed_policy(reading: Reading) -> Decision:
    """The original controller, bugs included, for comparison only."""
    current = len(reading.booting_ages) + reading.running
    if reading.visible == 0:
        # Bug: in-flight messages die with their nodes.
        return Decision(0, "seed: nothing visible → terminate all")
    desired = reading.visible if reading.visible <= SEED_CAP else SEED_BURST_CAP
    # Bug: booting nodes are not counted, so every decision during a boot launches again.
    launches = max(0, desired - reading.running)
    return Decision(current + launches, f"seed: {reading.visible} visible, {reading.running} running → "
                                        f"launch {launches}")


@dataclass
class Message:
    images: int
    arrived: float
    started: float | None = None  # the last start: an interrupted message waits again
    done: bool = False


@dataclass
class Node:
    id: str
    launched_at: float
    state: str = BOOTING
    tasks: list = field(default_factory=list)
    used: bool = False  # ever ran a task
    stops_at: float | None = None  # draining: when its worker stops taking messages
    terminated_at: float | None = None
    busy_since: float | None = None  # for the measured seconds per image
    busy_seconds: float = 0.0

    def accepting(self, now) -> bool:
        return self.state == RUNNING or (self.state == DRAINING and now < self.stops_at)


def load_trace(path) -> list[tuple[float, int]]:
    """Read a CSV with header `t,images` into (seconds, images) pairs."""
    with Path(path).open(newline="") as f:
        return sorted((float(row["t"]), int(row["images"])) for row in csv.DictReader(f))


def percentile(values, p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def split(images: int, per_message: int) -> list[int]:
    """An upload's images as messages, in groups of `per_message` like the real upload."""
    full, rest = divmod(images, per_message)
    return [per_message] * full + ([rest] if rest else [])


def cold_start_floor(trace, sim: SimulationSettings, max_nodes: int) -> float:
    """Node-seconds of an ideal fleet without idle hold: the work plus one boot per node.

    Each upload that finds no node busy boots one node per `slots_per_node` messages
    (at most `max_nodes`), every message starts as soon as a node is ready, and each
    node stops the moment its work is done, billed at least the minimum. An upload that
    arrives while that fleet is still busy only adds its work to it.
    """
    total, nodes, busy_until, episode_work = 0.0, 0, -math.inf, 0.0

    def bill():
        return max(nodes * sim.minimum_billed_seconds, nodes * sim.boot_seconds + episode_work)

    for t, images in trace:
        work = images * sim.seconds_per_image
        if t < busy_until:
            episode_work += work
            busy_until += work / nodes
            continue
        if nodes:
            total += bill()
        messages = len(split(images, sim.images_per_message))
        nodes = max(1, min(max_nodes, math.ceil(messages / sim.slots_per_node)))
        episode_work = work
        busy_until = t + sim.boot_seconds + work / nodes
    if nodes:
        total += bill()
    return total


class Simulation:
    """One policy over one trace, until every image is done and the fleet has settled."""

    def __init__(self, trace, policy="imgsite", settings: PolicySettings | None = None,
                 sim: SimulationSettings | None = None, record=False):
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}")
        self.trace, self.policy = sorted(trace), policy
        self.sim = sim or SimulationSettings()
        self.settings = settings or policy_for(self.sim)
        self.controller = Controller(self.settings)
        self.floor_nodes = self.settings.min_nodes if policy == "imgsite" else 0
        self.events, self.order = [], itertools.count()
        self.queue: deque[Message] = deque()
        self.messages: list[Message] = []
        self.nodes: list[Node] = []  # every node ever launched, for the bill
        self.live: list[Node] = []  # those not yet terminated
        self.ready: list[Node] = []  # of those, the ones whose worker has started
        self.redelivering = 0
        self.finished = deque()  # (at, images, node busy seconds) for the measured seconds per image
        self.finished_images, self.finished_seconds = 0, 0.0
        self.uploads = deque()  # (at, images) within the rate window
        self.uploaded = 0
        self.last_arrival_at = self.last_finished_at = None
        self.interrupted = self.max_fleet = self.work_done = 0
        self.booted = False  # a node has finished booting, so its boot time is measured
        self.timeline = [] if record else None  # one row per decision, for plots
        self.decisions = []

    # -- the event loop --

    def schedule(self, at, kind, payload=None):
        heapq.heappush(self.events, (at, kind, next(self.order), payload))

    def run(self) -> dict:
        for t, images in self.trace:
            self.schedule(t, ARRIVE, images)
        uploads_left = len(self.trace)
        trace_end = self.trace[-1][0] if self.trace else 0.0
        self.schedule(0.0, TICK)
        now = 0.0
        while self.events:
            now, kind, _, payload = heapq.heappop(self.events)
            if kind == ARRIVE:
                self.arrive(now, payload)
                uploads_left -= 1
            elif kind == REDELIVER:
                self.redelivering -= 1
                self.queue.append(payload)
            elif kind == READY and payload.state == BOOTING:
                payload.state = RUNNING
                self.ready.append(payload)
                self.booted = True
            elif kind == DONE:
                self.finish(now, *payload)
            elif kind == TICK:
                if not uploads_left and self.settled() or now > trace_end + self.sim.give_up_after:
                    break
                self.schedule(self.tick(now), TICK)
            self.start_work(now)
        for node in self.live:
            node.terminated_at = now
        self.result = self.summary()
        return self.result

    def settled(self) -> bool:
        return (not self.queue and not self.redelivering and not any(n.tasks for n in self.live)
                and len(self.live) <= self.floor_nodes)

    def arrive(self, now, images):
        for size in split(images, self.sim.images_per_message):
            message = Message(size, now)
            self.messages.append(message)
            self.queue.append(message)
        self.uploads.append((now, images))
        self.uploaded += images
        self.last_arrival_at = now

    def start_work(self, now):
        """Each visible message goes to the accepting node with the most free slots (SQS spreads them)."""
        if not self.queue:
            return
        slots = self.sim.slots_per_node
        free = [n for n in self.ready if len(n.tasks) < slots and n.accepting(now)]
        while self.queue and free:
            node = min(free, key=lambda n: (len(n.tasks), n.launched_at))
            if len(node.tasks) + 1 == slots:
                free.remove(node)
            message = self.queue.popleft()
            message.started = now
            if not node.tasks:
                node.busy_since = now
            node.tasks.append(message)
            node.used = True
            seconds = message.images * self.sim.seconds_per_image * self.sim.slots_per_node
            self.schedule(now + seconds, DONE, (node, message))

    def finish(self, now, node, message):
        if message not in node.tasks:  # its node was terminated: SQS redelivers it
            return
        node.tasks.remove(message)
        message.done = True
        node.busy_seconds += now - node.busy_since
        node.busy_since = now if node.tasks else None
        self.finished.append((now, message.images, node.busy_seconds))
        self.finished_images += message.images
        self.finished_seconds += node.busy_seconds
        node.busy_seconds = 0.0
        self.work_done += message.images * self.sim.seconds_per_image
        self.last_finished_at = now

    # -- one decision: observe, decide, act --

    def reading(self, now) -> Reading:
        while self.finished and self.finished[0][0] <= now - MEASURE_SECONDS:
            _, images, seconds = self.finished.popleft()
            self.finished_images -= images
            self.finished_seconds -= seconds
        while self.uploads and self.uploads[0][0] <= now - self.settings.rate_window_seconds:
            self.uploaded -= self.uploads.popleft()[1]
        in_flight = [m for n in self.live for m in n.tasks]
        alive = self.live
        return Reading(
            visible=len(self.queue), in_flight=len(in_flight) + self.redelivering,
            open_images=sum(m.images for m in self.queue) + sum(m.images for m in in_flight),
            booting_ages=tuple(now - n.launched_at for n in alive if n.state == BOOTING),
            running=sum(n.state == RUNNING for n in alive),
            busy=sum(bool(n.tasks) for n in alive if n.state != DRAINING),
            draining=sum(n.state == DRAINING for n in alive),
            seconds_per_image=self.finished_seconds / self.finished_images if self.finished_images else None,
            boot_seconds=self.sim.boot_seconds if self.booted else None,
            arrived=self.uploaded, last_arrival_at=self.last_arrival_at,
            last_finished_at=self.last_finished_at,
        )

    def tick(self, now) -> float:
        """Decide and act; returns when to decide next."""
        reading = self.reading(now)
        if self.policy == "imgsite":
            obs, decision = self.controller.decide(reading, now)
            then = next_pass_at(now, 0.0, obs, decision, self.settings)
        else:
            decision, then = seed_policy(reading), now + self.sim.interval
        self.decisions.append((now, decision))
        self.act(now, decision.target, reading)
        if self.timeline is not None:
            after = self.live
            self.timeline.append({
                "t": now, "visible": sum(m.images for m in self.queue),
                "in_flight": sum(m.images for n in after for m in n.tasks), "target": decision.target,
                **{state: sum(n.state == state for n in after) for state in (BOOTING, RUNNING, DRAINING)},
            })
        return then

    def act(self, now, target, reading):
        capacity = [n for n in self.live if n.state in (BOOTING, RUNNING)]
        if target > len(capacity):
            count = launch_count(target, len(capacity), reading.draining, self.settings.max_nodes) \
                if self.policy == "imgsite" else target - len(capacity)
            for _ in range(count):
                node = Node(id=f"n{len(self.nodes)}", launched_at=now)
                self.nodes.append(node)
                self.live.append(node)
                self.schedule(now + self.sim.boot_seconds, READY, node)
        elif target < len(capacity):
            if self.policy == "imgsite":
                busy = {n.id for n in capacity if n.tasks}
                chosen = set(nodes_to_retire(capacity, busy, len(capacity) - target))
                for node in capacity:
                    if node.id in chosen:
                        self.retire(node, now)
            else:  # the seed terminates whatever it picks, busy or not
                for node in sorted(capacity, key=lambda n: bool(n.tasks))[:len(capacity) - target]:
                    self.terminate(node, now)
        for node in self.live:  # like the real actor, push drains along on every pass
            if node.state == DRAINING and not node.tasks and now >= node.stops_at:
                self.terminate(node, now)
        self.live = [n for n in self.live if n.state != "terminated"]
        self.ready = [n for n in self.ready if n.state != "terminated"]
        self.max_fleet = max(self.max_fleet, len(self.live))

    def retire(self, node, now):
        if node.state == BOOTING:  # no worker yet: nothing to drain
            self.terminate(node, now)
        else:
            node.state, node.stops_at = DRAINING, now + self.sim.drain_notice_seconds

    def terminate(self, node, now):
        for message in node.tasks:  # killed mid-task: SQS redelivers after the visibility timeout
            self.interrupted += 1
            self.redelivering += 1
            self.schedule(now + self.sim.visibility_timeout, REDELIVER, message)
        node.tasks = []
        node.state, node.terminated_at = "terminated", now

    # -- results --

    def waits(self) -> list[float]:
        """Seconds each image waited for the start of the run that finished it (inf: never finished)."""
        return [w for m in self.messages
                for w in [m.started - m.arrived if m.done else math.inf] * m.images]

    def summary(self) -> dict:
        sim = self.sim
        lifetimes = [n.terminated_at - n.launched_at for n in self.nodes]
        billed = sum(max(sim.minimum_billed_seconds, s) for s in lifetimes)
        waits = self.waits()
        floor = cold_start_floor(self.trace, sim, self.settings.max_nodes)
        return {
            "policy": self.policy,
            "instance_minutes": round(billed / 60, 1),
            "floor_minutes": round(floor / 60, 1),
            "cost_per_floor": round(billed / floor, 2) if floor else 0.0,
            "wait_mean": round(sum(waits) / len(waits), 1) if waits else 0.0,
            "wait_p50": round(percentile(waits, 50), 1),
            "wait_p95": round(percentile(waits, 95), 1),
            "wait_max": round(max(waits, default=0.0), 1),
            "interrupted": self.interrupted,
            "unfinished": sum(m.images for m in self.messages if not m.done),
            "launches": len(self.nodes),
            "unused_launches": sum(not n.used for n in self.nodes),
            "max_fleet": self.max_fleet,
            "utilization": round(self.work_done / sum(lifetimes), 3) if sum(lifetimes) else 0.0,
        }


def simulate(trace, policy="imgsite", settings: PolicySettings | None = None,
             sim: SimulationSettings | None = None) -> dict:
    """Run one policy over the trace; the summary row."""
    return Simulation(trace, policy, settings, sim).run()


def compare(trace, settings: PolicySettings | None = None, sim: SimulationSettings | None = None,
            policies=POLICIES) -> list[dict]:
    """Results for each policy on the same trace and the same simulated cloud."""
    return [simulate(trace, policy, settings, sim) for policy in policies]
