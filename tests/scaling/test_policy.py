"""The scaling policy, scenario by scenario. The clock is `NOW`; nothing sleeps."""

import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from scaling.policy import (
    BOOTING,
    DRAINING,
    RUNNING,
    Controller,
    Decision,
    History,
    Observation,
    PolicySettings,
    Reading,
    desired_workers,
    launch_count,
    next_pass_at,
    nodes_to_retire,
    observation,
)

NOW = 1_000_000.0
# Spelled out so the table does not move when the defaults do. A message is 10 images of
# 0.5 s on a 2-slot node: one slot takes 10 s per message. A running node starts 2 × 7 = 14
# messages within the 60 s boot; a new node starts 2 when it is ready. The idle hold is
# 60 − 15 − 5 = 40 s and uploads recur when at most 2 × 60 + 40 + 15 = 175 s apart.
SETTINGS = PolicySettings(
    min_nodes=0, max_nodes=10, max_step=4, max_retire_step=3, boot_seconds=60, interval_seconds=15,
    busy_interval_seconds=5, slots_per_node=2, images_per_message=10, default_seconds_per_image=0.5,
    acceptable_latency_seconds=0, rate_window_seconds=600, target_utilization=0.5,
)
LONG_AGO = NOW - 3600


def obs(arrivals=(), last_active_at=None, **reading):
    """An observation whose messages hold 10 images each unless `open_images` says otherwise."""
    messages = reading.get("visible", 0) + reading.get("in_flight", 0) + reading.get("delayed", 0)
    reading.setdefault("open_images", 10 * messages)
    r = Reading(**reading)
    return Observation(now=NOW, reading=r, images_per_message=r.images_per_message(SETTINGS.images_per_message),
                       last_active_at=last_active_at, arrivals=arrivals)


BUSY_ONE = {"running": 1, "busy": 1, "in_flight": 2}  # one node, both slots half way through a message
RECURRING = (NOW - 250, NOW - 130, NOW - 10)  # uploads 120 s apart

SCENARIOS = [
    # (id, observation, settings changes, expected target)
    ("idle-fleet-stays-at-zero", obs(), {}, 0),
    ("cold-backlog-gets-a-node-per-two-messages", obs(visible=5), {}, 3),
    ("cold-backlog-step-cap", obs(visible=20), {}, 4),
    ("delayed-messages-are-backlog", obs(delayed=4), {}, 2),
    ("outbox-images-are-backlog", obs(outbox=40), {}, 2),
    ("slots-per-node-share-the-backlog", obs(visible=8), {"slots_per_node": 4}, 2),
    ("booting-nodes-count-no-over-launch", obs(visible=6, booting_ages=(30, 30, 30)), {}, 3),
    ("booting-nodes-about-ready-are-kept", obs(visible=6, booting_ages=(59, 59, 59)), {}, 3),
    ("booting-nodes-start-more-before-a-new-one-could", obs(visible=16, booting_ages=(30, 30)), {}, 2),
    ("booting-short-of-backlog-launches-the-rest", obs(visible=20, booting_ages=(30, 30)), {}, 4),
    ("surplus-booting-node-retired", obs(visible=2, booting_ages=(10, 50)), {}, 1),
    ("running-node-starts-it-before-a-boot-no-launch", obs(visible=8, **BUSY_ONE), {}, 1),
    ("running-node-too-slow-launches-for-the-rest", obs(visible=20, **BUSY_ONE), {}, 5),
    ("measured-seconds-per-image-slower", obs(visible=8, seconds_per_image=2.0, **BUSY_ONE), {}, 3),
    ("measured-boot-faster-no-launch", obs(visible=20, boot_seconds=110.0, **BUSY_ONE), {}, 1),
    ("acceptable-latency-gives-new-nodes-more-rounds", obs(visible=12), {"acceptable_latency_seconds": 10}, 3),
    ("smaller-messages-take-less-time", obs(visible=20, open_images=110, **BUSY_ONE), {}, 1),
    ("never-above-max", obs(visible=400, running=8, busy=8, in_flight=16), {}, 10),
    ("restart-above-max-clamped", obs(running=12, booting_ages=(5,)), {}, 10),
    ("busy-nodes-kept-idle-ones-go", obs(running=5, busy=2, in_flight=2), {}, 2),
    # The audit's log: 21 images in flight in 2 messages on one busy node protect that node, not 21.
    ("in-flight-images-protect-no-more-than-their-messages-need",
     obs(running=3, busy=1, in_flight=2, open_images=21), {}, 1),
    ("in-flight-messages-hold-nodes-before-their-workers-report", obs(running=3, busy=1, in_flight=3), {}, 2),
    ("in-flight-messages-on-draining-nodes-hold-no-running-node",
     obs(running=3, busy=1, in_flight=3, draining=1), {}, 1),
    # From a real run: one node's slots are full, a message waits, the other node has not polled yet.
    ("idle-node-kept-while-busy-slots-are-full",
     obs(visible=1, running=2, busy=1, in_flight=2), {"boot_seconds": 4}, 2),
    ("idle-node-goes-if-a-busy-slot-frees-before-a-boot", obs(visible=1, running=2, busy=1, in_flight=2), {}, 1),
    ("after-a-burst-one-warm-node-and-a-retire-cap",
     obs(running=5, last_finished_at=NOW, last_active_at=NOW), {}, 2),
    ("warm-node-held-within-the-idle-hold", obs(running=1, last_active_at=NOW - 39), {}, 1),
    ("warm-node-goes-after-the-idle-hold", obs(running=1, last_active_at=NOW - 41), {}, 0),
    ("idle-hold-is-a-setting", obs(running=1, last_active_at=NOW - 41), {"idle_hold_seconds": 60}, 1),
    ("never-busy-goes-to-zero", obs(running=2), {}, 0),
    ("min-respected-on-scale-in", obs(running=3, last_active_at=LONG_AGO), {"min_nodes": 2}, 2),
    ("min-launched-when-idle", obs(), {"min_nodes": 2}, 2),
    ("recurring-uploads-keep-the-littles-law-floor",
     obs(RECURRING, running=3, arrived=1200, last_active_at=LONG_AGO), {}, 2),
    ("recurring-trickle-keeps-one-node", obs(RECURRING, running=1, arrived=3, last_active_at=LONG_AGO), {}, 1),
    ("recurring-floor-launches-from-zero", obs(RECURRING, arrived=3, last_active_at=LONG_AGO), {}, 1),
    ("one-off-upload-no-floor", obs((NOW - 100,), running=1, arrived=300, last_active_at=LONG_AGO), {}, 0),
    ("gaps-past-the-recurrence-no-floor",
     obs((NOW - 500, NOW - 300), running=1, arrived=30, last_active_at=LONG_AGO), {}, 0),
    ("silence-past-the-recurrence-no-floor",
     obs((NOW - 400, NOW - 300), running=1, arrived=30, last_active_at=LONG_AGO), {}, 0),
]


@pytest.mark.parametrize(
    "observation_, changes, expected",
    [pytest.param(o, c, e, id=name) for name, o, c, e in SCENARIOS],
)
def test_desired_workers(observation_, changes, expected):
    decision = desired_workers(observation_, replace(SETTINGS, **changes))
    assert decision.target == expected, decision.reason
    assert decision.reason


def test_the_reason_names_the_backlog_and_what_a_message_costs():
    decision = desired_workers(obs(visible=5), SETTINGS)
    assert decision.reason == ("5 waiting + 0 in flight messages, 10 s each per slot; "
                               "3 more needed by the time a new node boots: scaling out 0 → 3")


def test_the_reason_says_what_is_kept_on_scale_in():
    decision = desired_workers(obs(running=5, busy=2, in_flight=2), SETTINGS)
    assert decision.reason.endswith("keeping backlog 2, warm 1: scaling in 5 → 2")


def test_the_reason_names_the_floor_of_a_recurring_flow():
    decision = desired_workers(obs(RECURRING, running=2, arrived=1200, last_active_at=LONG_AGO), SETTINGS)
    assert "uploads every ≤120 s, 120 images/min → floor 2" in decision.reason


def test_the_reason_says_when_max_stops_a_launch():
    decision = desired_workers(obs(visible=400, running=10, busy=10, in_flight=20), SETTINGS)
    assert decision.target == 10 and "but at max 10" in decision.reason


def test_decision_is_frozen():
    with pytest.raises(FrozenInstanceError):
        Decision(1, "x").target = 2


def test_policy_module_imports_neither_django_nor_boto3():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, scaling.policy, scaling.simulate, scaling.family\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'boto3', 'botocore'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_images_per_message_is_measured_and_capped():
    assert Reading(visible=2, in_flight=2, open_images=20).images_per_message(16) == 5.0
    assert Reading(visible=1, open_images=99).images_per_message(16) == 16.0
    assert Reading(visible=4, open_images=0).images_per_message(16) == 1.0
    assert Reading().images_per_message(16) == 16.0


def test_observation_marks_a_busy_queue_now():
    seen = observation(History(last_active_at=NOW - 500), Reading(in_flight=1, open_images=3), NOW, SETTINGS)
    assert seen.last_active_at == NOW and seen.idle_for == 0


def test_observation_counts_recently_finished_work():
    seen = observation(History(last_active_at=NOW - 500), Reading(last_finished_at=NOW - 20), NOW, SETTINGS)
    assert seen.last_active_at == NOW - 20 and seen.idle_for == 20


def test_observation_remembers_each_upload_once_and_forgets_old_ones():
    history = History(arrivals=(NOW - 5000, NOW - 100))
    seen = observation(history, Reading(last_arrival_at=NOW - 100), NOW, SETTINGS)
    assert seen.arrivals == (NOW - 100,)
    seen = observation(history, Reading(last_arrival_at=NOW - 3), NOW, SETTINGS)
    assert seen.arrivals == (NOW - 100, NOW - 3)


def test_the_controller_carries_its_memory_from_one_decision_to_the_next():
    controller = Controller(SETTINGS)
    controller.decide(Reading(running=1, last_arrival_at=NOW - 130, arrived=3, last_finished_at=NOW - 120), NOW - 120)
    _, held = controller.decide(Reading(running=1, last_arrival_at=NOW - 10, arrived=4), NOW)
    assert controller.history.arrivals == (NOW - 130, NOW - 10)
    assert held.target == 1 and "floor 1" in held.reason
    _, alone = Controller(SETTINGS).decide(Reading(running=1, last_arrival_at=NOW - 10, arrived=4), NOW)
    assert alone.target == 0  # one upload is no flow


def test_memory_covers_the_rate_window_and_the_recurrence():
    assert SETTINGS.memory_seconds == 600
    assert replace(SETTINGS, rate_window_seconds=60).memory_seconds == 2 * 60 + 40 + 15


@pytest.mark.parametrize("boot, interval, hold", [(60, 15, 40), (70, 15, 50), (30, 60, 0), (180, 10, 165)])
def test_the_idle_hold_is_a_boot_less_the_wait_for_the_next_decision_and_the_drain(boot, interval, hold):
    assert replace(SETTINGS, boot_seconds=boot, interval_seconds=interval).idle_hold == hold


def node(node_id, state=RUNNING, launched_at=0.0):
    return SimpleNamespace(id=node_id, state=state, launched_at=launched_at)


def test_nodes_to_retire_takes_booting_nodes_first_youngest_first_then_the_oldest_idle():
    nodes = [node("old", launched_at=1), node("young", launched_at=40), node("b1", BOOTING, 50),
             node("b2", BOOTING, 60), node("gone", DRAINING)]
    assert nodes_to_retire(nodes, set(), 3) == ["b2", "b1", "old"]
    assert nodes_to_retire(nodes, set(), 9) == ["b2", "b1", "old", "young"]


def test_nodes_to_retire_never_chooses_a_busy_node():
    nodes = [node("a", launched_at=1), node("b", launched_at=2)]
    assert nodes_to_retire(nodes, {"a", "b"}, 2) == []
    assert nodes_to_retire(nodes, {"a"}, 2) == ["b"]


@pytest.mark.parametrize("target, current, draining, surge, expected", [
    (5, 0, 0, 0, 5), (12, 0, 0, 0, 10), (10, 6, 3, 0, 1), (10, 6, 3, 2, 3), (3, 5, 0, 0, 0),
])
def test_launches_keep_booting_running_and_draining_within_max_and_surge(target, current, draining, surge, expected):
    assert launch_count(target, current, draining, max_nodes=10, surge=surge) == expected


def test_decisions_come_on_the_interval_grid_and_sooner_while_the_fleet_moves():
    still = obs()
    quiet = desired_workers(still, SETTINGS)
    assert next_pass_at(NOW, NOW - 20, still, quiet, SETTINGS) == NOW + 10  # the grid: every 15 s from the start
    moving = obs(running=1, busy=1, in_flight=1)
    decision = desired_workers(moving, SETTINGS)
    assert next_pass_at(NOW, NOW - 20, moving, decision, SETTINGS) == NOW + 5
    assert next_pass_at(NOW, NOW - 12, moving, decision, SETTINGS) == NOW + 3  # never past the grid
