"""Replay an arrival trace against a simulated SQS queue and fleet.

Pure Python (no Django, no boto3). Time advances event by event (arrival,
boot finished, image finished, message visible again, autoscaler tick), so
sub-second service times are exact. Each policy tick builds its Observation
with `build_observation()` and decides with the same function as the real
autoscaler.

The shipped traces (scaling/traces/*.csv, header `t,images`):

- steady: single uploads, about 12 a minute at random for 30 minutes; one
  node keeps up, so this is the cost of serving a trickle.
- bursty: six batch uploads of 50-200 images, 3-8 minutes apart, over 25
  minutes; each burst finds the fleet cold again.
- spike: one bulk upload of 1000 images; more than the node cap can drain
  quickly, so this is the cost of a large cold start.
- idle: four lone images 10-27 minutes apart; every one waits for a boot,
  so this is the cost of what stays up between them.
"""

import csv
import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from scaling.policy import (
    History,
    PolicySettings,
    build_observation,
    desired_workers,
    seed_policy,
    update_history,
)

POLICIES = ("imgsite", "seed")
RESULT_KEYS = (
    "policy", "instance_minutes", "wait_p50", "wait_p95", "wait_max",
    "interrupted", "max_fleet", "scale_events", "utilization",
)
MEASURE_SECONDS = 300.0  # window for the measured seconds per image

# Same-time events happen in this order. The controller's poll comes first, so
# an image is only ever counted as interrupted if it really was mid-task.
TICK, DONE, READY, ARRIVE, REDELIVER = range(5)


@dataclass(frozen=True)
class SimulationSettings:
    boot_seconds: float = 70.0
    seconds_per_image: float = 0.5
    interval: float = 15.0
    visibility_timeout: float = 300.0
    minimum_billed_seconds: float = 60.0  # EC2 bills at least a minute per launch
    give_up_after: float = 6 * 3600.0  # after the trace ends, if the fleet never settles


@dataclass
class Image:
    arrived: float
    started: float | None = None


@dataclass
class Node:
    launched: float
    state: str = "booting"  # booting, running, draining, terminated
    image: Image | None = None
    terminated: float | None = None


@dataclass
class Fleet:
    nodes: list[Node] = field(default_factory=list)
    busy_seconds: float = 0.0

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.state != "terminated"]

    def capacity(self) -> list[Node]:
        return [n for n in self.nodes if n.state in ("booting", "running")]


def load_trace(path) -> list[tuple[float, int]]:
    """Read a CSV with header `t,images` into (seconds, images) pairs."""
    with Path(path).open(newline="") as f:
        return sorted((float(row["t"]), int(row["images"])) for row in csv.DictReader(f))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def simulate(trace, policy: str = "imgsite", settings: PolicySettings | None = None,
             sim: SimulationSettings | None = None) -> dict:
    """Run one policy over the trace until all images are done and the fleet settled."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    settings = settings or PolicySettings()
    sim = sim or SimulationSettings()
    floor = settings.min_nodes if policy == "imgsite" else 0

    events, order = [], itertools.count()

    def schedule(at, kind, payload=None):
        heapq.heappush(events, (at, kind, next(order), payload))

    for t, count in trace:
        schedule(t, ARRIVE, count)
    trace_end = trace[-1][0] if trace else 0.0
    schedule(0.0, TICK)

    queue: deque[Image] = deque()
    redelivering: set[int] = set()
    images: list[Image] = []
    done_log: list[tuple[float, float]] = []  # (finished at, seconds) for the measured rate
    fleet = Fleet()
    history = History()
    stats = {"interrupted": 0, "max_fleet": 0, "scale_events": 0}
    arrivals_left = len(trace)

    def start_work(now):
        for node in fleet.nodes:
            if not queue:
                return
            if node.state == "running" and node.image is None:
                image = queue.popleft()
                image.started = now
                node.image = image
                schedule(now + sim.seconds_per_image, DONE, (node, image))

    def terminate(node, now):
        if node.image is not None:  # killed mid-task: SQS redelivers after the timeout
            fleet.busy_seconds += now - node.image.started
            stats["interrupted"] += 1
            redelivering.add(id(node.image))
            schedule(now + sim.visibility_timeout, REDELIVER, node.image)
            node.image = None
        node.state, node.terminated = "terminated", now

    def act(target, now):
        capacity = fleet.capacity()
        if target > len(capacity):
            for _ in range(target - len(capacity)):
                node = Node(launched=now)
                fleet.nodes.append(node)
                schedule(now + sim.boot_seconds, READY, node)
        elif target < len(capacity):
            # Like the real actor: idle running nodes, then booting ones, busy ones last.
            # The seed does not care who is busy.
            victims = sorted(capacity, key=lambda n: (n.image is not None, n.state != "running", n.launched))
            for node in victims[: len(capacity) - target]:
                if policy == "imgsite" and node.image is not None:
                    node.state = "draining"  # finishes its image, then goes
                else:
                    terminate(node, now)
        else:
            return
        stats["scale_events"] += 1
        stats["max_fleet"] = max(stats["max_fleet"], len(fleet.alive()))

    def tick(now):
        nonlocal history
        recent = [s for t, s in done_log if t > now - MEASURE_SECONDS]
        capacity = fleet.capacity()
        obs = build_observation(
            history, now=now, visible=len(queue),
            in_flight=sum(n.image is not None for n in fleet.nodes) + len(redelivering),
            booting=sum(n.state == "booting" for n in capacity),
            running=sum(n.state == "running" for n in capacity),
            seconds_per_image=sum(recent) / len(recent) if recent else None,
            last_finished_at=done_log[-1][0] if done_log else None,
        )
        if policy == "imgsite":
            decision = desired_workers(obs, settings)
            history = update_history(history, obs, settings)
        else:
            decision = seed_policy(obs)
        act(decision.target, now)

    now = 0.0
    while events:
        now, kind, _, payload = heapq.heappop(events)
        if kind == ARRIVE:
            arrived = [Image(arrived=now) for _ in range(payload)]
            images.extend(arrived)
            queue.extend(arrived)
            arrivals_left -= 1
        elif kind == REDELIVER:
            redelivering.discard(id(payload))
            queue.append(payload)
        elif kind == READY and payload.state == "booting":
            payload.state = "running"
        elif kind == DONE:
            node, image = payload
            if node.image is image:
                fleet.busy_seconds += sim.seconds_per_image
                done_log.append((now, sim.seconds_per_image))
                node.image = None
                if node.state == "draining":
                    terminate(node, now)
        elif kind == TICK:
            settled = (not arrivals_left and not queue and not redelivering
                       and not any(n.image for n in fleet.nodes)
                       and len(fleet.alive()) <= floor)
            if settled:
                break
            if now > trace_end + sim.give_up_after:
                raise RuntimeError(f"{policy}: fleet did not settle {sim.give_up_after:.0f} s after the trace")
            tick(now)
            schedule(now + sim.interval, TICK)
        start_work(now)

    for node in fleet.alive():
        node.terminated = now
    return summarize(policy, images, fleet, stats, sim)


def summarize(policy, images, fleet, stats, sim) -> dict:
    lifetimes = [n.terminated - n.launched for n in fleet.nodes]
    billed = sum(max(sim.minimum_billed_seconds, s) for s in lifetimes)
    node_seconds = sum(lifetimes)
    waits = [i.started - i.arrived for i in images]
    return {
        "policy": policy,
        "instance_minutes": round(billed / 60, 1),
        "wait_p50": round(percentile(waits, 50), 1),
        "wait_p95": round(percentile(waits, 95), 1),
        "wait_max": round(max(waits, default=0.0), 1),
        "interrupted": stats["interrupted"],
        "max_fleet": stats["max_fleet"],
        "scale_events": stats["scale_events"],
        "utilization": round(fleet.busy_seconds / node_seconds, 3) if node_seconds else 0.0,
    }


def compare(trace, settings: PolicySettings | None = None, sim: SimulationSettings | None = None,
            policies=POLICIES) -> list[dict]:
    """Results for each policy on the same trace and the same simulated cloud."""
    return [simulate(trace, policy, settings, sim) for policy in policies]
