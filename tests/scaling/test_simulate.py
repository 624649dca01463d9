"""The simulator, the trace family and the sweep, and `manage.py simulate_scaling`.

Every trace in scaling/traces/ is judged in every swept cloud (boot time × seconds per image
× interval, scaling.family.SWEEP) against the seed controller. The policy is configured as
the real loop would be for that cloud (policy_for), never from the local AUTOSCALE_* settings.
"""

import json
from functools import cache
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from scaling import autoscaler
from scaling.family import FAMILY, load_family, sweep_cells
from scaling.management.commands.simulate_scaling import README_BLOCK, family_report
from scaling.simulate import (
    RESULT_KEYS,
    Simulation,
    SimulationSettings,
    cold_start_floor,
    load_trace,
    nodes_to_retire,
    simulate,
    split,
)

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "scaling" / "traces"


@cache
def traces():
    return load_family(TRACES)


@cache
def cells():
    return sweep_cells(traces())


def cell_id(name, sim):
    return f"{name} boot {sim.boot_seconds:g} s, {sim.seconds_per_image:g} s/image, interval {sim.interval:g} s"


def test_the_family_in_scaling_traces_is_what_its_seeds_generate():
    for name, generate in FAMILY.items():
        stored = load_trace(TRACES / f"{name}.csv")
        assert stored == sorted(generate()), name
    assert {"diurnal", "ramp", "periodic", "spike5000", "heavy", "pauses"} <= set(traces())
    assert sum(images for _, images in traces()["spike5000"]) == 5000


def test_the_sweep_covers_every_trace_in_every_cloud():
    clouds = {(sim.boot_seconds, sim.seconds_per_image, sim.interval) for _, sim, _, _ in cells()}
    assert len(clouds) == 27 and len(cells()) == 27 * len(traces())
    assert {b for b, _, _ in clouds} == {30, 90, 180} and {t for _, _, t in clouds} == {10, 30, 60}


def test_imgsite_never_interrupts_a_task_and_finishes_every_image():
    bad = [cell_id(name, sim) for name, sim, ours, _ in cells() if ours["interrupted"] or ours["unfinished"]]
    assert not bad


def test_imgsite_waits_no_longer_than_the_seed_at_the_95th_percentile():
    bad = [(cell_id(name, sim), ours["wait_p95"], seed["wait_p95"])
           for name, sim, ours, seed in cells() if ours["wait_p95"] > seed["wait_p95"]]
    assert not bad


def test_imgsite_costs_no_more_than_the_seed_unless_it_buys_shorter_waits():
    # With a 60 s interval the seed stops over-launching; on a one-off spike or bursts that
    # recur every 150 s its fewer nodes then cost less but leave images waiting longer.
    bad = [(cell_id(name, sim), ours, seed) for name, sim, ours, seed in cells()
           if ours["instance_minutes"] > seed["instance_minutes"] and ours["wait_mean"] >= seed["wait_mean"]]
    assert not bad
    dearer = [cell_id(name, sim) for name, sim, ours, seed in cells()
              if ours["instance_minutes"] > seed["instance_minutes"]]
    assert len(dearer) <= len(cells()) // 25, dearer


def test_imgsite_costs_less_than_the_seed_over_the_family_in_every_cloud():
    totals = {}
    for _, sim, ours, seed in cells():
        mine, theirs = totals.get(sim, (0.0, 0.0))
        totals[sim] = (mine + ours["instance_minutes"], theirs + seed["instance_minutes"])
    assert all(mine < theirs for mine, theirs in totals.values())


def test_every_result_gives_cost_over_the_cold_start_floor():
    for _, _, ours, _ in cells():
        assert ours["floor_minutes"] > 0
        assert ours["cost_per_floor"] == pytest.approx(ours["instance_minutes"] / ours["floor_minutes"], rel=0.05)


def test_the_readme_table_is_the_one_the_command_writes():
    block = README_BLOCK.search((ROOT / "README.md").read_text())
    assert block, "README.md has lost its simulate_scaling block"
    generated = family_report(traces(), cells())
    assert block.group(0) == block.group(1) + generated + "<!-- simulate_scaling --family: end -->", (
        "README.md is stale: run `manage.py simulate_scaling --family --readme README.md`")


# -- The world the simulator models --

def test_an_upload_becomes_messages_of_up_to_images_per_message():
    assert split(40, 16) == [16, 16, 8]
    assert split(16, 16) == [16]


def test_a_message_waits_as_one_and_takes_a_slot_for_its_images():
    run = Simulation([(0.0, 40)], sim=SimulationSettings(boot_seconds=10, interval=5))
    run.run()
    assert [m.images for m in run.messages] == [16, 16, 8]
    assert len(set(run.waits())) <= 3 and len(run.waits()) == 40
    # Two nodes (3 messages, 2 slots each) ready at 15 s; the work is 40 × 0.5 node-seconds.
    assert run.result["launches"] == 2 and run.work_done == 20.0


def test_a_lone_image_waits_for_the_next_decision_and_one_boot_then_its_node_is_held_and_drained():
    result = simulate([(1.0, 1)])
    assert result["wait_max"] == 15 - 1 + 70
    # Launched at 15 s, ready at 85 s, done at 86 s; idle held 50 s (70 − 15 − 5), released on the
    # 150 s pass, stopped by the pass 5 s later once its worker has seen the drain flag.
    assert result["instance_minutes"] == round((155 - 15) / 60, 1)


def test_the_cost_has_ec2s_one_minute_minimum():
    result = simulate([(0.0, 1)], "seed", sim=SimulationSettings(boot_seconds=10))
    # Launched on the 15 s decision, terminated on the 30 s one, billed a full minute.
    assert result["instance_minutes"] == 1.0


def test_the_cold_start_floor_is_the_work_plus_a_boot_per_node():
    sim = SimulationSettings()
    assert cold_start_floor([(0.0, 40)], sim, max_nodes=30) == 2 * 70 + 40 * 0.5
    assert cold_start_floor([(0.0, 1)], sim, max_nodes=30) == 70 + 0.5
    assert cold_start_floor([(0.0, 1), (1000.0, 1)], sim, max_nodes=30) == 2 * (70 + 0.5)
    assert cold_start_floor([(0.0, 1)], SimulationSettings(boot_seconds=10), max_nodes=30) == 60


def test_the_simulator_retires_with_the_real_actors_choice():
    assert nodes_to_retire is autoscaler.nodes_to_retire


def test_periodic_small_bursts_keep_one_node_instead_of_thrashing():
    run = Simulation(traces()["periodic"])
    result = run.run()
    first, second, *rest = sorted(run.messages, key=lambda m: m.arrived)
    # One upload is no pattern: the first two find the fleet cold; from then on the node stays.
    assert min(first.started - first.arrived, second.started - second.arrived) > 60
    assert max(m.started - m.arrived for m in rest) < 1
    assert result["launches"] == 2 and result["max_fleet"] == 1


def test_nothing_is_launched_for_backlog_running_nodes_finish_before_a_boot():
    for name in ("bursty", "steady", "pauses"):
        assert simulate(traces()[name])["unused_launches"] == 0, name
    assert simulate(traces()["bursty"], "seed")["unused_launches"] > 1000


def test_after_a_burst_drains_at_most_one_warm_node_stays():
    run = Simulation(traces()["spike"], record=True)
    run.run()
    done = max(m.started for m in run.messages) + 16 * 0.5 * 2  # the last message's run
    after = [row for row in run.timeline if row["t"] > done + 3 * run.settings.busy_interval_seconds]
    assert after and all(row["booting"] + row["running"] <= 1 for row in after)


def test_the_seed_never_finishes_a_message_that_outlasts_its_interval():
    # It kills busy nodes whenever nothing is visible, so SQS redelivers the message forever.
    sim = SimulationSettings(seconds_per_image=2.0, give_up_after=900)
    seed = simulate([(0.0, 16)], "seed", sim=sim)
    assert seed["unfinished"] == 16 and seed["interrupted"] >= 2
    assert simulate([(0.0, 16)], "imgsite", sim=sim)["unfinished"] == 0


def test_results_have_exactly_the_documented_keys():
    assert set(simulate([(0.0, 3)])) == set(RESULT_KEYS)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        simulate([(0.0, 1)], "magic")


# -- The command --

def test_command_prints_one_json_object_per_policy():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "idle.csv"), "--json", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["policy"] for row in rows] == ["imgsite", "seed"]
    assert all(set(row) == set(RESULT_KEYS) for row in rows)


def test_command_runs_one_policy_in_the_given_cloud():
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


@override_settings(AUTOSCALE_MAX_NODES=2, AUTOSCALE_MAX_STEP=1)
def test_command_uses_the_policy_defaults_whatever_the_settings():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "spike.csv"), "--policy", "imgsite", "--json", stdout=out)
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row == simulate(traces()["spike"])


@override_settings(AUTOSCALE_MAX_NODES=2, AUTOSCALE_MAX_STEP=1)
def test_command_can_use_the_autoscale_settings():
    out = StringIO()
    call_command("simulate_scaling", str(TRACES / "spike.csv"), "--policy", "imgsite", "--from-settings",
                 "--json", stdout=out)
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row["max_fleet"] == 2


def test_command_draws_each_policy(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "idle.png"
    call_command("simulate_scaling", str(TRACES / "idle.csv"), "--plot", str(path), stdout=StringIO(),
                 stderr=StringIO())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_command_rewrites_only_the_readme_block(tmp_path, monkeypatch):
    monkeypatch.setattr("scaling.management.commands.simulate_scaling.family_report", lambda traces: "TABLE\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- simulate_scaling --family: begin -->\nold\n<!-- simulate_scaling --family: end -->\n"
                      "outro\n")
    call_command("simulate_scaling", "--family", "--readme", str(readme), stdout=StringIO())
    assert readme.read_text() == ("intro\n<!-- simulate_scaling --family: begin -->\nTABLE\n"
                                  "<!-- simulate_scaling --family: end -->\noutro\n")
    readme.write_text("no block")
    with pytest.raises(CommandError, match="has no"):
        call_command("simulate_scaling", "--family", "--readme", str(readme), stdout=StringIO())


def test_command_refuses_a_missing_trace(tmp_path):
    with pytest.raises(CommandError):
        call_command("simulate_scaling", str(tmp_path / "nope.csv"))
    with pytest.raises(CommandError, match="give a trace"):
        call_command("simulate_scaling")

