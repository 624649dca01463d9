"""The autoscaler's decision: pure functions of numbers and `now`.

No Django, no boto3. The observer turns SQS and the fleet into an
`Observation`; `desired_workers()` turns it into a `Decision`; the actor
launches or drains nodes. `seed_policy()` keeps the original controller's
behaviour so the simulator can compare the two.
"""

import math
from dataclasses import dataclass, replace

# The original controller's caps: one node per visible message up to 15,
# and 17 once more than 15 messages are visible.
SEED_CAP = 15
SEED_BURST_CAP = 17


@dataclass(frozen=True)
class Decision:
    target: int
    reason: str


@dataclass(frozen=True)
class PolicySettings:
    min_nodes: int = 0
    # A spend cap: a 1000-image upload gets 30 nodes, not one per 10 images.
    max_nodes: int = 30
    # How long an image may wait for a free worker once the fleet is up (10 images
    # per node at 0.5 s each). A cold burst waits a boot on top of this: a node costs
    # at least its 70 s boot, so once we pay for a cold start we buy enough to drain fast.
    acceptable_latency_seconds: float = 5.0
    default_seconds_per_image: float = 0.5
    max_step: int = 30  # a bad reading can add at most this many nodes per decision
    # Partial scale-in while work remains follows the largest recommendation of
    # this window, so noisy SQS counts do not make the fleet flap.
    stabilization_seconds: float = 120.0
    # Once nothing has been visible, in flight, delayed or finished for this long,
    # idle nodes are pure cost: go to min_nodes whatever the window holds. A
    # relaunch is billed at least EC2's 60 s minimum (and really the 70 s boot),
    # so holding idle nodes this long never costs more than relaunching them.
    scale_to_zero_seconds: float = 60.0
    tolerance: float = 0.1
    slots_per_node: int = 1

    @property
    def memory_seconds(self) -> float:
        """How far back a restarted autoscaler must look to rebuild its History."""
        return max(self.stabilization_seconds, self.scale_to_zero_seconds)

    def images_per_node(self, seconds_per_image: float | None) -> float:
        """Backlog one node may hold and still drain within the acceptable latency."""
        if not seconds_per_image or seconds_per_image <= 0:
            seconds_per_image = self.default_seconds_per_image
        # A node never works on more than its slots at once, whatever the latency.
        per_slot = max(self.acceptable_latency_seconds / seconds_per_image, 1.0)
        return per_slot * self.slots_per_node


@dataclass(frozen=True)
class Observation:
    """What the observer saw at `now` (epoch seconds), plus the history it keeps."""

    now: float
    visible: int = 0
    in_flight: int = 0
    delayed: int = 0
    booting: int = 0
    running: int = 0  # running nodes that are not draining
    seconds_per_image: float | None = None
    last_nonempty_at: float | None = None
    recent_targets: tuple[tuple[float, int], ...] = ()

    @property
    def backlog(self) -> int:
        return self.visible + self.in_flight + self.delayed

    @property
    def current(self) -> int:
        return self.booting + self.running

    @property
    def empty_for(self) -> float:
        """Seconds since anything was visible, in flight, delayed or finished (inf: never)."""
        if self.backlog:
            return 0.0
        if self.last_nonempty_at is None:
            return math.inf
        return self.now - self.last_nonempty_at


@dataclass(frozen=True)
class History:
    """What the caller remembers between decisions (or rebuilds from ScalingEvent rows)."""

    recent_targets: tuple[tuple[float, int], ...] = ()
    last_nonempty_at: float | None = None


def build_observation(history: History, *, now: float, visible: int, in_flight: int = 0,
                      delayed: int = 0, booting: int = 0, running: int = 0,
                      seconds_per_image: float | None = None,
                      last_finished_at: float | None = None) -> Observation:
    """Combine one reading of the queue and fleet with the remembered history.

    `last_finished_at` is when a worker last finished an image: work that came
    and went between two readings still counts as the queue being busy.
    """
    seen = [t for t in (history.last_nonempty_at, last_finished_at) if t is not None]
    if visible + in_flight + delayed > 0:
        seen.append(now)
    last_nonempty_at = max(seen, default=None)
    return Observation(
        now=now, visible=visible, in_flight=in_flight, delayed=delayed,
        booting=booting, running=running, seconds_per_image=seconds_per_image,
        last_nonempty_at=last_nonempty_at, recent_targets=history.recent_targets,
    )


def update_history(history: History, obs: Observation, settings: PolicySettings) -> History:
    """Record this observation's raw recommendation and forget what left the window."""
    window_start = obs.now - settings.stabilization_seconds
    kept = tuple((t, n) for t, n in history.recent_targets if t > window_start)
    return replace(
        history,
        recent_targets=kept + ((obs.now, recommended_workers(obs, settings)),),
        last_nonempty_at=obs.last_nonempty_at,
    )


def recommended_workers(obs: Observation, settings: PolicySettings) -> int:
    """Nodes needed for this backlog alone, before step caps and stabilization."""
    exact = obs.backlog / settings.images_per_node(obs.seconds_per_image)
    if obs.current and abs(exact / obs.current - 1) <= settings.tolerance:
        raw = obs.current  # noise in SQS's approximate counts: no change
    else:
        raw = math.ceil(exact)
    # Never recommend retiring nodes that are working on in-flight images.
    busy = min(obs.current, math.ceil(obs.in_flight / settings.slots_per_node))
    return max(settings.min_nodes, min(settings.max_nodes, max(raw, busy)))


def desired_workers(obs: Observation, settings: PolicySettings) -> Decision:
    """Target tracking on backlog per node: scale out at once, scale in slowly.

    Partial scale-in waits out the stabilization window; scale to min_nodes waits
    until the queue has been completely empty for the scale-to-zero window.
    """
    current = obs.current
    per_node = settings.images_per_node(obs.seconds_per_image)
    raw = recommended_workers(obs, settings)
    basis = f"backlog {obs.backlog} images, {per_node:.3g}/node → {raw} nodes"

    if current > settings.max_nodes:
        return Decision(settings.max_nodes, f"{basis}; {current} nodes above max, down to {settings.max_nodes}")
    if current < settings.min_nodes:
        target = max(settings.min_nodes, min(raw, current + settings.max_step))
        return Decision(target, f"{basis}; below min {settings.min_nodes}, up to {target}")
    if raw > current:
        target = min(raw, current + settings.max_step)
        capped = f" (step cap {settings.max_step})" if target < raw else ""
        return Decision(target, f"{basis}; scaling out {current} → {target}{capped}")
    if raw == current:
        return Decision(current, f"{basis}; holding")

    empty_for = obs.empty_for
    if empty_for >= settings.scale_to_zero_seconds:
        target = settings.min_nodes
        quiet = "never busy" if math.isinf(empty_for) else f"empty {empty_for:.0f} s"
        return Decision(target, f"{basis}; queue {quiet} (scale-to-zero window "
                                f"{settings.scale_to_zero_seconds:.0f} s): scaling in {current} → {target}")

    window_start = obs.now - settings.stabilization_seconds
    in_window = [n for t, n in obs.recent_targets if t > window_start]
    target = max([raw, *in_window])
    if target >= current:
        return Decision(current, f"{basis}; holding: within stabilization window (max {target})")
    if target == 0:
        if current <= 1:
            return Decision(current, f"{basis}; holding: queue busy {empty_for:.0f} s ago")
        target = 1  # one warm node until the scale-to-zero window has passed
    return Decision(target, f"{basis}; scaling in {current} → {target}")


def seed_policy(obs: Observation) -> Decision:
    """The original controller, bugs included, for comparison only."""
    if obs.visible == 0:
        # Bug: in-flight images die with their nodes.
        return Decision(0, "seed: nothing visible → terminate all")
    desired = obs.visible if obs.visible <= SEED_CAP else SEED_BURST_CAP
    # Bug: booting nodes are not counted, so every tick during boot launches again.
    launches = max(0, desired - obs.running)
    target = obs.current + launches
    return Decision(target, f"seed: {obs.visible} visible, {obs.running} running → launch {launches}")
