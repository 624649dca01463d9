"""The autoscaler's decision: pure functions of numbers and `now`.

No Django, no boto3. The observer reads SQS and the fleet into a `Reading`;
`Controller.decide()` adds what it remembers (a `History`) to make an
`Observation`, and `desired_workers()` turns that into a `Decision`; the actor
launches, or retires the nodes `nodes_to_retire()` picks. The simulator runs the
very same Controller, so the two cannot drift apart.

The unit of work is the SQS message: a task of up to IMAGES_PER_MESSAGE images
that one worker slot runs from start to end. A node has `slots_per_node` slots
(the worker's concurrency) and finishes one image every `seconds_per_image`
when all of them are busy, so one message occupies one slot for
images × seconds_per_image × slots seconds.
"""

import math
from dataclasses import dataclass, field

BOOTING, RUNNING, DRAINING = "booting", "running", "draining"


@dataclass(frozen=True)
class Decision:
    target: int
    reason: str


@dataclass(frozen=True)
class PolicySettings:
    min_nodes: int = 0
    # A spend cap: the largest upload gets this many nodes, however many messages it has.
    max_nodes: int = 30
    max_step: int = 30  # most nodes launched by one decision
    # Most nodes retired by one decision: one bad reading cannot empty the fleet.
    max_retire_step: int = 10
    boot_seconds: float = 70.0  # launch → worker taking messages
    interval_seconds: float = 15.0  # between two decisions while nothing moves
    # Between two decisions while nodes boot, work or drain: a node that became ready, finished
    # or stopped is seen within this, not a whole interval later.
    busy_interval_seconds: float = 5.0
    slots_per_node: int = 2  # the worker's concurrency: messages a node runs at once
    images_per_message: int = 16  # to count images not yet sent as messages
    default_seconds_per_image: float = 0.5  # until a worker has measured it
    # A message may wait this long after a node launched now could start it before another
    # node is launched for it. 0: whatever a running node cannot start by then gets a new node.
    acceptable_latency_seconds: float = 0.0
    # Arrivals over this window give the rate for the Little's-law floor.
    rate_window_seconds: float = 600.0
    # The floor keeps nodes this busy on average: random arrivals queue without headroom.
    target_utilization: float = 0.7
    # One idle node is kept this long after the last work (None: boot − interval − busy interval):
    # with the wait for the next decision and the drain, it then has idled about a boot, what
    # relaunching it would cost (rent-or-buy).
    idle_hold_seconds: float | None = None
    # Uploads that recur at most this far apart keep the Little's-law floor of nodes up between
    # them (None: what a cold start costs, boot + idle hold + interval, plus the boot that every
    # image of the next upload would otherwise wait).
    recurrence_seconds: float | None = None

    @property
    def idle_hold(self) -> float:
        if self.idle_hold_seconds is not None:
            return self.idle_hold_seconds
        return max(0.0, self.boot_seconds - self.interval_seconds - self.busy_interval_seconds)

    @property
    def recurrence(self) -> float:
        if self.recurrence_seconds is not None:
            return self.recurrence_seconds
        return 2 * self.boot_seconds + self.idle_hold + self.interval_seconds

    @property
    def memory_seconds(self) -> float:
        """How far back a restarted autoscaler must look to rebuild its History."""
        return max(self.rate_window_seconds, self.recurrence, self.idle_hold)


@dataclass(frozen=True)
class Reading:
    """One look at the queue and the fleet, in the units SQS and the fleet report."""

    visible: int = 0  # messages waiting
    in_flight: int = 0  # messages received by a worker and not yet deleted
    delayed: int = 0  # messages not yet visible
    outbox: int = 0  # images accepted but not yet sent as messages
    open_images: int = 0  # queued or processing images, to size the messages
    booting_ages: tuple[float, ...] = ()  # seconds since each booting node was launched
    running: int = 0  # nodes taking messages (not draining)
    busy: int = 0  # of the booting and running nodes, those running a task
    draining: int = 0
    seconds_per_image: float | None = None  # measured node-seconds per image, if known
    boot_seconds: float | None = None  # measured launch → worker taking messages, if known
    arrived: int = 0  # images accepted within the rate window
    last_arrival_at: float | None = None  # when the latest image was accepted
    last_finished_at: float | None = None  # when a worker last finished an image

    @property
    def messages(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def images_per_message(self, cap: int) -> float:
        """Mean images in a message in the queue: open images ÷ messages, between 1 and the cap."""
        if not self.messages:
            return float(cap)
        return min(max(self.open_images / self.messages, 1.0), float(cap))


@dataclass(frozen=True)
class History:
    """What the controller remembers between decisions (or rebuilds from ScalingEvent rows)."""

    last_active_at: float | None = None  # when the queue last held work or a worker finished
    arrivals: tuple[float, ...] = ()  # distinct upload times seen, within memory


@dataclass(frozen=True)
class Observation:
    """A Reading at `now` (epoch seconds) with the remembered history folded in."""

    now: float
    reading: Reading = field(default_factory=Reading)
    images_per_message: float = 16.0
    last_active_at: float | None = None
    arrivals: tuple[float, ...] = ()

    @property
    def booting(self) -> int:
        return len(self.reading.booting_ages)

    @property
    def current(self) -> int:
        return self.booting + self.reading.running

    @property
    def waiting(self) -> float:
        """Messages no worker has yet, counting the outbox as messages."""
        r = self.reading
        return r.visible + r.delayed + r.outbox / self.images_per_message

    @property
    def idle_for(self) -> float:
        """Seconds since the queue last held work or a worker finished (inf: never)."""
        if self.reading.messages or self.reading.outbox:
            return 0.0
        if self.last_active_at is None:
            return math.inf
        return self.now - self.last_active_at


def observation(history: History, reading: Reading, now: float, settings: PolicySettings) -> Observation:
    """Fold one reading into the remembered history."""
    active = [t for t in (history.last_active_at, reading.last_finished_at) if t is not None]
    if reading.messages or reading.outbox:
        active.append(now)
    arrivals = history.arrivals
    if reading.last_arrival_at is not None and reading.last_arrival_at not in arrivals:
        arrivals = (*arrivals, reading.last_arrival_at)
    since = now - settings.memory_seconds
    return Observation(
        now=now, reading=reading, images_per_message=reading.images_per_message(settings.images_per_message),
        last_active_at=max(active, default=None), arrivals=tuple(t for t in arrivals if t > since),
    )


def remember(obs: Observation) -> History:
    return History(last_active_at=obs.last_active_at, arrivals=obs.arrivals)


def slot_seconds(obs: Observation, settings: PolicySettings) -> float:
    """How long one slot takes for one message of the mean size."""
    return obs.images_per_message * seconds_per_image(obs, settings) * settings.slots_per_node


def seconds_per_image(obs: Observation, settings: PolicySettings) -> float:
    measured = obs.reading.seconds_per_image
    return measured if measured and measured > 0 else settings.default_seconds_per_image


def boot_seconds(obs: Observation, settings: PolicySettings) -> float:
    measured = obs.reading.boot_seconds
    return measured if measured is not None and measured >= 0 else settings.boot_seconds


def starts_by(free_at: float, deadline: float, slot: float) -> int:
    """Messages a slot that is free `free_at` seconds from now starts by `deadline` seconds from now."""
    if free_at > deadline:
        return 0
    return math.floor((deadline - free_at) / slot + 1e-9) + 1


def holding_nodes(obs: Observation, settings: PolicySettings) -> int:
    """Running nodes holding messages: those that report a task, and at least enough to hold the
    in-flight messages (not on draining nodes) a slot each, since SQS counts a message in flight
    as soon as a worker receives it, before the worker reports its task."""
    r, slots = obs.reading, settings.slots_per_node
    received = math.ceil(max(0, r.in_flight - r.draining * slots) / slots)
    return min(r.running, max(r.busy, received))


def backlog_nodes(obs: Observation, settings: PolicySettings) -> tuple[int, int, int]:
    """(running nodes to keep, booting nodes to keep, nodes to launch) for the waiting messages.

    Nodes are taken in the order they are ready: running ones, booting ones, then
    new ones (ready after a boot). Each is needed only if, by the time it is ready
    (plus the acceptable latency), messages would still be waiting for it with the
    nodes before it doing all they can. So nothing is launched for a backlog that
    running and booting nodes start before a new node could, and surplus booting
    nodes are the first to go.
    """
    waiting = obs.waiting
    boot = boot_seconds(obs, settings)
    if recurring(obs, settings) is not None:  # what a recurring flow adds before a new node is ready
        waiting += arrival_rate(obs, settings) * boot / obs.images_per_message
    waiting = math.ceil(waiting - 1e-9)
    r, slots, slot = obs.reading, settings.slots_per_node, slot_seconds(obs, settings)
    holding = holding_nodes(obs, settings)
    if waiting <= 0:
        return holding, 0, 0
    latency = settings.acceptable_latency_seconds
    busy_slots = min(r.in_flight, r.running * slots)  # each assumed half way through its message
    free_slots = r.running * slots - busy_slots

    def started(deadline, booting_ready, idle=r.running - holding):
        """Messages the busy running nodes, `idle` idle ones and the kept booting ones start by `deadline`."""
        free = min(free_slots, (holding + idle) * slots - busy_slots)
        return (free * starts_by(0.0, deadline, slot) + busy_slots * starts_by(slot / 2, deadline, slot)
                + sum(slots * starts_by(ready, deadline, slot) for ready in booting_ready))

    # Busy nodes stay; idle ones beyond what starts the waiting messages before a relaunch could are spare.
    deadline = boot + latency
    idle = 0
    while idle < r.running - holding and started(deadline, [], idle) < waiting:
        idle += 1
    running = holding + idle
    booting_ready = []
    for ready in sorted(max(0.0, boot - age) for age in r.booting_ages):
        if started(ready + latency, booting_ready) >= waiting:
            break
        booting_ready.append(ready)
    late = waiting - started(boot + latency, booting_ready)
    per_new = slots * starts_by(0.0, latency, slot)
    return running, len(booting_ready), max(0, math.ceil(late / per_new))


def recurring(obs: Observation, settings: PolicySettings) -> float | None:
    """The longest gap between recent uploads (and since the last one), if they recur within the
    recurrence gap; None for a one-off."""
    arrivals = [t for t in obs.arrivals if t > obs.now - settings.rate_window_seconds]
    if len(arrivals) < 2:
        return None
    gap = max([b - a for a, b in zip(arrivals, arrivals[1:], strict=False)] + [obs.now - arrivals[-1]])
    return gap if gap <= settings.recurrence else None


def arrival_rate(obs: Observation, settings: PolicySettings) -> float:
    """Images per second over the rate window."""
    return obs.reading.arrived / settings.rate_window_seconds


def rate_floor(obs: Observation, settings: PolicySettings) -> tuple[int, str]:
    """Little's law: nodes busy on average = arrival rate × seconds per image, when uploads recur."""
    gap = recurring(obs, settings)
    if gap is None:
        return 0, ""
    rate = arrival_rate(obs, settings)
    floor = max(1, math.ceil(rate * seconds_per_image(obs, settings) / settings.target_utilization - 1e-9))
    return floor, f"uploads every ≤{gap:.0f} s, {rate * 60:.3g} images/min → floor {floor}"


def desired_workers(obs: Observation, settings: PolicySettings) -> Decision:
    """The fleet size for this observation, with the reason in words.

    Launch for the backlog that running and booting nodes cannot start before a new node
    would be ready; otherwise keep the larger of: the nodes the backlog needs (busy ones
    included), min_nodes, one warm node for the idle hold, and the Little's-law floor of a
    recurring flow. Everything else is retired, at most max_retire_step per decision.
    """
    r, current = obs.reading, obs.current
    running, booting, launch = backlog_nodes(obs, settings)
    floor, floor_reason = rate_floor(obs, settings)
    parts = {"backlog": running + booting, "min": settings.min_nodes,
             "warm": 1 if obs.idle_for < settings.idle_hold else 0, "rate": floor}
    keep = max(parts.values())
    basis = (f"{obs.waiting:.3g} waiting + {r.in_flight} in flight messages, "
             f"{slot_seconds(obs, settings):.3g} s each per slot")
    if current > settings.max_nodes:
        return Decision(settings.max_nodes, f"{basis}; {current} nodes above max, down to {settings.max_nodes}")
    if launch or keep > current:
        wanted = max(current + launch, keep)
        target = min(wanted, settings.max_nodes, current + settings.max_step)
        why = (f"{launch} more needed by the time a new node boots" if launch else
               floor_reason if keep == floor else f"{max(parts, key=parts.get)} {keep}")
        if target == current:
            return Decision(current, f"{basis}; {why}, but at max {settings.max_nodes}")
        capped = " (max)" if target == settings.max_nodes < wanted else " (step cap)" if target < wanted else ""
        return Decision(target, f"{basis}; {why}: scaling out {current} → {target}{capped}")
    if keep == current:
        return Decision(current, f"{basis}; holding {current}" + (f" ({floor_reason})" if floor else ""))
    target = max(keep, current - settings.max_retire_step)
    held = ", ".join(f"{name} {n}" for name, n in parts.items() if n)
    return Decision(target, f"{basis}; keeping {held or 'none'}: scaling in {current} → {target}")


def moving(obs: Observation, decision: Decision) -> bool:
    """Whether the fleet is changing: then the next decision comes after the busy interval."""
    r = obs.reading
    return bool(obs.booting or r.draining or r.busy or r.messages or r.outbox or decision.target != obs.current)


def next_pass_at(now: float, started: float, obs: Observation, decision: Decision,
                 settings: PolicySettings) -> float:
    """When to decide next: on the interval's grid (counted from `started`), and after the busy
    interval while the fleet moves. Staying on the grid keeps the first look at new work where
    the interval puts it, however many quick passes came in between."""
    interval = settings.interval_seconds
    grid = started + (math.floor((now - started) / interval + 1e-9) + 1) * interval
    if moving(obs, decision):
        return min(grid, now + settings.busy_interval_seconds)
    return grid


@dataclass
class Controller:
    """Observe → decide → remember, the bookkeeping the real loop and the simulator share."""

    settings: PolicySettings
    history: History = field(default_factory=History)

    def decide(self, reading: Reading, now: float) -> tuple[Observation, Decision]:
        obs = observation(self.history, reading, now, self.settings)
        decision = desired_workers(obs, self.settings)
        self.history = remember(obs)
        return obs, decision


def nodes_to_retire(nodes, busy, count: int) -> list:
    """Which `count` nodes to retire: booting ones first (the youngest first), then idle running
    ones (the oldest first); a busy or draining node is never chosen. `nodes` have id, state and
    launched_at."""
    booting = sorted((n for n in nodes if n.state == BOOTING and n.id not in busy),
                     key=lambda n: n.launched_at, reverse=True)
    idle = sorted((n for n in nodes if n.state == RUNNING and n.id not in busy), key=lambda n: n.launched_at)
    return [node.id for node in (booting + idle)[:max(0, count)]]


def launch_count(target: int, current: int, draining: int, max_nodes: int, surge: int = 0) -> int:
    """Nodes to launch towards `target`, so that booting + running + draining ≤ max + surge."""
    room = max(0, max_nodes + surge - current - draining)
    return max(0, min(target - current, room))
