"""The simulator, the shipped traces, and `manage.py simulate_scaling`.

Both policies see the same simulated cloud (70 s boot, 0.5 s per image, a
decision every 15 s, 300 s visibility timeout). imgsite runs with the
PolicySettings defaults (10 images per node, at most 30 nodes, scale to zero
after 60 s of an empty queue), never with the local AUTOSCALE_* settings. The
seed is faithful, so it is not capped in total: it launches up to 17 nodes per
tick while earlier ones boot.
"""

import json
from functools import cache
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from scaling.policy import PolicySettings
from scaling.simulate import (
    RESULT_KEYS,
    SimulationSettings,
    compare,
    load_trace,
    simulate,
)

TRACES = Path(__file__).resolve().parents[2] / "scaling" / "traces"
TRACE_NAMES = ["steady", "bursty", "spike", "idle"]


@cache
def results(name):
    imgsite, seed = compare(load_trace(TRACES / f"{name}.csv"), PolicySettings(), SimulationSettings())
    return imgsite, seed


def better_by(ours, theirs):
    return 1 - ours / theirs if theirs else 0.0


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_imgsite_never_interrupts(name):
    imgsite, _ = results(name)
    assert imgsite["interrupted"] == 0


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_imgsite_costs_no_more_than_seed(name):
    imgsite, seed = results(name)
    assert imgsite["instance_minutes"] <= seed["instance_minutes"]


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_imgsite_waits_no_longer_than_seed(name):
    imgsite, seed = results(name)
    assert imgsite["wait_p95"] <= seed["wait_p95"]


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_imgsite_is_30_percent_better_on_cost_or_wait(name):
    imgsite, seed = results(name)
    gains = (better_by(imgsite["instance_minutes"], seed["instance_minutes"]),
             better_by(imgsite["wait_p95"], seed["wait_p95"]))
    assert max(gains) >= 0.30, gains


def test_seed_interrupts_the_steady_trickle():
    # Work keeps arriving, so some polls find the visible queue empty while a
    # worker holds a just-received image: the seed terminates it mid-task and
    # SQS hands the image back only after the visibility timeout.
    _, seed = results("steady")
    assert seed["interrupted"] > 0
    assert seed["wait_max"] >= SimulationSettings().visibility_timeout


def test_seed_over_launches_while_nodes_boot():
    imgsite, seed = results("spike")
    assert seed["max_fleet"] > 17
    assert imgsite["max_fleet"] <= PolicySettings().max_nodes


def test_the_spike_drains_with_the_cap_launched_in_one_decision():
    imgsite, seed = results("spike")
    assert imgsite["max_fleet"] == PolicySettings().max_nodes
    assert imgsite["scale_events"] == 2  # out once, back to zero once
    assert imgsite["wait_max"] < seed["wait_max"]


def test_an_empty_queue_goes_to_zero_after_the_scale_to_zero_window():
    # 10 images at t=1 run on one node from 85 s to 90 s; nothing is left after that.
    quick = simulate([(1.0, 10)], "imgsite", PolicySettings(scale_to_zero_seconds=45))
    slow = simulate([(1.0, 10)], "imgsite", PolicySettings(scale_to_zero_seconds=75))
    # Launched at the 15 s tick; retired at the first tick at least the window after 90 s.
    assert quick["instance_minutes"] == (135 - 15) / 60
    assert slow["instance_minutes"] == (165 - 15) / 60


def test_a_lone_image_waits_for_the_next_tick_and_one_boot():
    imgsite = simulate([(1.0, 1)], "imgsite")
    seed = simulate([(1.0, 1)], "seed")
    assert imgsite["wait_max"] == seed["wait_max"] == 15 - 1 + 70
    assert imgsite["max_fleet"] == 1
    assert seed["max_fleet"] == 5  # one more launch on every tick of the 70 s boot


def test_cost_has_ec2s_one_minute_minimum():
    result = simulate([(0.0, 1)], "seed", sim=SimulationSettings(boot_seconds=10))
    # One node: launched at the 15 s tick, terminated at the 30 s one, billed a full minute.
    assert result["instance_minutes"] == 1.0
    assert result["utilization"] == round(0.5 / 15, 3)


def test_results_have_exactly_the_documented_keys():
    assert set(simulate([(0.0, 3)], "imgsite")) == set(RESULT_KEYS)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        simulate([(0.0, 1)], "magic")


def test_command_prints_one_json_object_per_policy():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "idle.csv"), "--json", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["policy"] for row in rows] == ["imgsite", "seed"]
    assert all(set(row) == set(RESULT_KEYS) for row in rows)


def test_command_runs_one_policy_with_the_given_cloud():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "idle.csv"), "--policy", "seed", "--boot-seconds", "25",
                 "--seconds-per-image", "2", "--interval", "10", "--json", stdout=out)
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row["policy"] == "seed"
    assert row["wait_max"] <= 25 + 10


def test_command_prints_a_table_by_default():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "idle.csv"), stdout=out)
    header, *rows = out.getvalue().splitlines()
    assert header.split() == list(RESULT_KEYS)
    assert [row.split()[0] for row in rows] == ["imgsite", "seed"]


@override_settings(AUTOSCALE_MAX_NODES=2, AUTOSCALE_MAX_STEP=1, AUTOSCALE_STABILIZATION_SECONDS=600)
def test_command_uses_the_policy_defaults_whatever_the_settings():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "spike.csv"), "--policy", "imgsite", "--json", stdout=out)
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row == results("spike")[0]


@override_settings(AUTOSCALE_MAX_NODES=2, AUTOSCALE_MAX_STEP=1)
def test_command_can_use_the_autoscale_settings():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "spike.csv"), "--policy", "imgsite", "--from-settings",
                 "--json", stdout=out)
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row["max_fleet"] == 2


def test_command_refuses_a_missing_trace(tmp_path):
    with pytest.raises(CommandError):
        call_command("simulate_scaling", str(tmp_path / "nope.csv"))
