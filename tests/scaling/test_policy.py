"""The scaling policy, scenario by scenario. The clock is `NOW`; nothing sleeps."""

import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from scaling.policy import (
    Decision,
    History,
    Observation,
    PolicySettings,
    build_observation,
    desired_workers,
    recommended_workers,
    seed_policy,
    update_history,
)

NOW = 1_000_000.0
# Spelled out so the table does not move when the defaults do: 30 s / 0.5 s = 60 images per node.
# The scale-to-zero window is shorter than the stabilization window, as in the defaults.
SETTINGS = PolicySettings(
    min_nodes=0, max_nodes=10, acceptable_latency_seconds=30.0, default_seconds_per_image=0.5,
    max_step=4, stabilization_seconds=300.0, scale_to_zero_seconds=60.0, tolerance=0.1, slots_per_node=1,
)


def obs(**fields):
    return Observation(now=NOW, **fields)


SCENARIOS = [
    # (id, observation, settings changes, expected target)
    ("idle-fleet-stays-at-zero", obs(), {}, 0),
    ("backlog-launches-at-once", obs(visible=120), {}, 2),
    ("boot-in-progress-no-over-launch", obs(visible=120, booting=2), {}, 2),
    ("boot-in-progress-launches-only-the-difference", obs(visible=240, booting=2), {}, 4),
    ("delayed-images-count-as-backlog", obs(visible=60, delayed=60), {}, 2),
    ("step-cap-from-zero", obs(visible=600), {}, 4),
    ("step-cap-counts-booting", obs(visible=600, booting=4), {}, 8),
    ("never-above-max", obs(visible=6000, running=8), {}, 10),
    ("restart-above-max-clamped-under-load", obs(visible=6000, running=13), {}, 10),
    ("restart-above-max-clamped-when-idle", obs(running=12, booting=1), {}, 10),
    ("in-flight-only-backlog-holds-busy-nodes", obs(in_flight=3, running=3), {}, 3),
    ("in-flight-only-backlog-keeps-one-node", obs(in_flight=1, running=1, last_nonempty_at=NOW), {}, 1),
    ("in-flight-retires-only-the-idle-nodes", obs(in_flight=1, running=3, last_nonempty_at=NOW), {}, 1),
    ("noise-above-steady-state-within-tolerance", obs(visible=650, running=10), {"max_nodes": 20}, 10),
    ("noise-below-steady-state-within-tolerance", obs(visible=1100, running=20), {"max_nodes": 30}, 20),
    ("outside-tolerance-scales-out", obs(visible=340, running=5), {}, 6),
    ("scale-in-held-within-stabilization-window",
     obs(visible=60, running=4, last_nonempty_at=NOW, recent_targets=((NOW - 200, 4),)), {}, 4),
    ("scale-in-after-stabilization-window",
     obs(visible=60, running=4, last_nonempty_at=NOW, recent_targets=((NOW - 301, 4), (NOW - 100, 2))), {}, 2),
    ("scale-in-to-max-of-window",
     obs(running=6, last_nonempty_at=NOW - 30, recent_targets=((NOW - 250, 3), (NOW - 100, 1))), {}, 3),
    ("backlog-is-never-empty-even-without-history",
     obs(visible=60, running=4, recent_targets=((NOW - 200, 4),)), {}, 4),
    ("empty-queue-holds-the-fleet-before-the-scale-to-zero-window",
     obs(running=10, last_nonempty_at=NOW - 59, recent_targets=((NOW - 75, 10),)), {}, 10),
    ("empty-queue-scales-to-zero-after-its-window-whatever-stabilization-holds",
     obs(running=10, last_nonempty_at=NOW - 60, recent_targets=((NOW - 75, 10),)), {}, 0),
    ("no-scale-to-zero-before-whole-window-empty",
     obs(running=3, last_nonempty_at=NOW - 50, recent_targets=((NOW - 150, 0),)), {}, 1),
    ("last-node-held-before-whole-window-empty", obs(running=1, last_nonempty_at=NOW - 59), {}, 1),
    ("scale-to-zero-after-whole-window-empty",
     obs(running=3, last_nonempty_at=NOW - 60, recent_targets=((NOW - 150, 0),)), {}, 0),
    ("scale-to-zero-window-is-a-setting",
     obs(running=3, last_nonempty_at=NOW - 60, recent_targets=((NOW - 150, 0),)), {"scale_to_zero_seconds": 90}, 1),
    ("scale-to-zero-when-never-busy", obs(running=2), {}, 0),
    ("min-respected-on-scale-in", obs(running=3, last_nonempty_at=NOW - 1000), {"min_nodes": 2}, 2),
    ("min-launched-when-idle", obs(), {"min_nodes": 2}, 2),
    ("default-seconds-per-image-when-unknown", obs(visible=120, seconds_per_image=None), {}, 2),
    ("measured-seconds-per-image-slower", obs(visible=120, seconds_per_image=1.0), {}, 4),
    ("measured-seconds-per-image-faster", obs(visible=120, seconds_per_image=0.25), {}, 1),
    ("slots-per-node-share-the-backlog", obs(visible=240), {"slots_per_node": 4}, 1),
    ("images-slower-than-latency-one-per-slot", obs(visible=3, seconds_per_image=60.0), {}, 3),
]


@pytest.mark.parametrize(
    "observation, changes, expected",
    [pytest.param(o, c, e, id=name) for name, o, c, e in SCENARIOS],
)
def test_desired_workers(observation, changes, expected):
    settings = PolicySettings(**{**SETTINGS.__dict__, **changes})
    decision = desired_workers(observation, settings)
    assert decision.target == expected, decision.reason
    assert decision.reason


def test_jitter_around_a_steady_state_never_changes_the_fleet():
    settings = PolicySettings(**{**SETTINGS.__dict__, "max_nodes": 30})
    for visible in range(1100, 1301, 10):  # ±8 % around 20 nodes' worth of backlog
        decision = desired_workers(obs(visible=visible, running=20), settings)
        assert decision.target == 20, (visible, decision.reason)


def test_reason_names_the_backlog_and_the_per_node_figure():
    decision = desired_workers(obs(visible=120), SETTINGS)
    assert decision.reason.startswith("backlog 120 images, 60/node → 2 nodes")


def test_reason_says_why_it_holds():
    held = desired_workers(obs(visible=60, running=4, recent_targets=((NOW - 200, 4),)), SETTINGS)
    assert "stabilization window" in held.reason


def test_reason_names_the_scale_to_zero_window():
    decision = desired_workers(obs(running=3, last_nonempty_at=NOW - 75), SETTINGS)
    assert "queue empty 75 s (scale-to-zero window 60 s): scaling in 3 → 0" in decision.reason


def test_decision_is_frozen():
    with pytest.raises(FrozenInstanceError):
        Decision(1, "x").target = 2


def test_policy_module_imports_neither_django_nor_boto3():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, scaling.policy, scaling.simulate\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'boto3', 'botocore'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_build_observation_marks_a_busy_queue_now():
    observation = build_observation(History(last_nonempty_at=NOW - 500), now=NOW, visible=0, in_flight=2)
    assert observation.last_nonempty_at == NOW
    assert observation.backlog == 2


def test_build_observation_counts_recently_finished_work():
    history = History(last_nonempty_at=NOW - 500)
    observation = build_observation(history, now=NOW, visible=0, last_finished_at=NOW - 20)
    assert observation.last_nonempty_at == NOW - 20


def test_update_history_records_the_raw_recommendation_and_forgets_old_ones():
    history = History(recent_targets=((NOW - 400, 9), (NOW - 100, 3)))
    observation = build_observation(history, now=NOW, visible=120, running=4)
    updated = update_history(history, observation, SETTINGS)
    assert updated.recent_targets == ((NOW - 100, 3), (NOW, 2))
    assert updated.last_nonempty_at == NOW
    assert recommended_workers(observation, SETTINGS) == 2


def replay(visible_at, seconds=900):
    """Targets tick by tick for a queue whose visible count is `visible_at(second)`."""
    history, targets, fleet = History(), {}, 0
    for second in range(0, seconds + 1, 15):
        observation = build_observation(history, now=NOW + second, visible=visible_at(second), running=fleet)
        fleet = desired_workers(observation, SETTINGS).target
        history = update_history(history, observation, SETTINGS)
        targets[second] = fleet
    return targets


def test_replayed_ticks_scale_in_under_load_only_after_the_stabilization_window():
    targets = replay(lambda second: 240 if second < 60 else 60)  # a burst, then one node's worth
    assert targets[45] == 4
    assert all(n == 4 for s, n in targets.items() if 45 <= s < 45 + 300)
    assert targets[345] == 1


def test_replayed_ticks_scale_an_empty_queue_to_zero_after_its_own_window():
    targets = replay(lambda second: 240 if second < 60 else 0)  # a burst, then nothing
    assert targets[45] == 4
    assert all(n == 4 for s, n in targets.items() if 45 <= s < 45 + 60)
    assert targets[105] == 0


def test_defaults_drain_a_cold_burst_fast_but_cap_the_spend():
    defaults = PolicySettings()
    assert desired_workers(obs(visible=200), defaults).target == 20  # 10 images per node
    assert desired_workers(obs(visible=1000), defaults).target == defaults.max_nodes == 30


def test_memory_covers_both_windows():
    assert SETTINGS.memory_seconds == 300
    assert PolicySettings(stabilization_seconds=60, scale_to_zero_seconds=90).memory_seconds == 90


SEED_SCENARIOS = [
    ("one-node-per-visible-image", obs(visible=5), 5),
    ("cap-15", obs(visible=15), 15),
    ("over-15-means-17", obs(visible=16), 17),
    ("over-15-caps-at-17", obs(visible=500), 17),
    ("counts-running-nodes", obs(visible=10, running=4), 10),
    ("ignores-booting-nodes-and-over-launches", obs(visible=10, booting=10), 20),
    ("never-scales-in-while-anything-visible", obs(visible=2, running=5), 5),
    ("nothing-visible-terminates-everything", obs(running=4, booting=2), 0),
    ("nothing-visible-kills-in-flight-work", obs(in_flight=5, running=5), 0),
]


@pytest.mark.parametrize(
    "observation, expected",
    [pytest.param(o, e, id=name) for name, o, e in SEED_SCENARIOS],
)
def test_seed_policy(observation, expected):
    decision = seed_policy(observation)
    assert decision.target == expected, decision.reason
    assert decision.reason.startswith("seed:")
