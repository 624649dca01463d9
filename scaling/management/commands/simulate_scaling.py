"""Replay upload traces against the imgsite and seed scaling policies; tables, the README's, plots."""

import csv
import json
import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from scaling.autoscaler import policy_settings
from scaling.family import FAMILY, SWEEP, load_family, sweep_cells
from scaling.simulate import POLICIES, RESULT_KEYS, Simulation, SimulationSettings, load_trace, policy_for

TRACES = Path(settings.BASE_DIR) / "scaling" / "traces"
README_BLOCK = re.compile(r"(<!-- simulate_scaling --family: begin -->\n).*?(<!-- simulate_scaling --family: end -->)",
                          re.DOTALL)
TABLE_KEYS = ("instance_minutes", "floor_minutes", "cost_per_floor", "wait_mean", "wait_p50", "wait_p95", "wait_max",
              "interrupted", "unfinished", "launches", "unused_launches", "max_fleet")


def markdown(rows, keys):
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[key]) for key in keys) + " |" for row in rows]
    return "\n".join(lines)


def sweep_summary(traces, cells) -> str:
    """Every trace in every swept cloud, in one paragraph of numbers."""
    ours = [cell[2] for cell in cells]
    seed = [cell[3] for cell in cells]
    dearer = [(name, sim, mine, theirs) for name, sim, mine, theirs in cells
              if mine["instance_minutes"] > theirs["instance_minutes"]]
    values = {key: ", ".join(f"{value:g}" for value in values) for key, values in SWEEP.items()}
    ratios = [row["cost_per_floor"] for row in ours]
    text = (
        f"Over the sweep ({len(cells)} runs: boot {values['boot_seconds']} s × {values['seconds_per_image']} s "
        f"per image × interval {values['interval']} s × {len(traces)} traces), imgsite interrupted "
        f"{sum(row['interrupted'] for row in ours)} tasks and left {sum(row['unfinished'] for row in ours)} images "
        f"unfinished; its p95 wait was at most the seed's in "
        f"{sum(a['wait_p95'] <= b['wait_p95'] for a, b in zip(ours, seed))} runs and it cost at most the seed's in "
        f"{len(cells) - len(dearer)}; in all, {sum(row['instance_minutes'] for row in ours):,.0f} instance-minutes "
        f"against the seed's {sum(row['instance_minutes'] for row in seed):,.0f}, at {min(ratios)}–{max(ratios)} "
        f"times the cold-start floor."
    )
    if dearer:
        text += " The seed cost less, and made images wait longer on average, in: " + "; ".join(
            f"{name} (boot {sim.boot_seconds:g} s, {sim.seconds_per_image:g} s per image, interval {sim.interval:g} s: "
            f"{mine['instance_minutes']} against {theirs['instance_minutes']} instance-minutes, mean wait "
            f"{mine['wait_mean']} against {theirs['wait_mean']} s)" for name, sim, mine, theirs in dearer) + "."
    return text


def family_report(traces, cells=None) -> str:
    """The README's block: each trace in the default cloud, then the whole sweep in numbers."""
    cells = cells if cells is not None else sweep_cells(traces)
    default = SimulationSettings()
    rows = [{"trace": name, **Simulation(trace, policy, sim=default).run()}
            for name, trace in traces.items() for policy in POLICIES]
    total = {policy: sum(row["instance_minutes"] for row in rows if row["policy"] == policy) for policy in POLICIES}
    return (markdown(rows, ("trace", "policy", *TABLE_KEYS)) + "\n\n"
            + f"Total over these traces: imgsite {total['imgsite']:,.1f} instance-minutes, "
            + f"the seed {total['seed']:,.1f}.\n\n" + sweep_summary(traces, cells) + "\n")


class Command(BaseCommand):
    help = (
        "Simulate the autoscaler on a CSV trace (t,images) and compare it with the seed controller; or, with "
        "--family, on every trace in scaling/traces/. The policy runs with the simulated cloud's boot time, "
        "interval and concurrency and PolicySettings' other defaults, unless --from-settings."
    )

    def add_arguments(self, parser):
        parser.add_argument("trace", nargs="?", help="CSV file with header t,images")
        parser.add_argument("--family", action="store_true", help="every trace in scaling/traces/, as a table")
        parser.add_argument("--readme", metavar="README.md", help="with --family: rewrite the README's table")
        parser.add_argument("--write-family", action="store_true",
                            help="write the generated traces (scaling/family.py) to scaling/traces/")
        parser.add_argument("--policy", choices=[*POLICIES, "both"], default="both")
        parser.add_argument("--from-settings", action="store_true",
                            help="use the AUTOSCALE_* settings, as `autoscale` would, instead of the defaults")
        parser.add_argument("--boot-seconds", type=float, default=SimulationSettings.boot_seconds)
        parser.add_argument("--seconds-per-image", type=float, default=SimulationSettings.seconds_per_image,
                            help="simulated node-seconds per image with every slot busy")
        parser.add_argument("--interval", type=float, default=SimulationSettings.interval,
                            help="seconds between decisions while nothing moves")
        parser.add_argument("--slots", type=int, default=SimulationSettings.slots_per_node,
                            help="tasks a node runs at once (the worker's concurrency)")
        parser.add_argument("--json", action="store_true", help="one JSON object per policy per line")
        parser.add_argument("--plot", metavar="FILE.png", help="draw each policy's run (needs matplotlib)")

    def handle(self, *args, **options):
        if options["write_family"]:
            return self.write_family()
        if options["family"]:
            return self.family(options["readme"])
        if not options["trace"]:
            raise CommandError("give a trace, or --family, or --write-family")
        try:
            trace = load_trace(options["trace"])
        except (OSError, KeyError, ValueError) as e:
            raise CommandError(f"cannot read trace {options['trace']}: {e}") from e
        sim = SimulationSettings(boot_seconds=options["boot_seconds"], seconds_per_image=options["seconds_per_image"],
                                 interval=options["interval"], slots_per_node=options["slots"])
        policy = policy_settings(interval=sim.interval) if options["from_settings"] else policy_for(sim)
        policies = POLICIES if options["policy"] == "both" else (options["policy"],)
        runs = {name: Simulation(trace, name, policy, sim, record=bool(options["plot"])) for name in policies}
        results = [run.run() for run in runs.values()]
        if options["plot"]:
            from scaling.plot import plot_runs  # matplotlib is a development dependency only

            plot_runs(runs, options["plot"], title=f"{Path(options['trace']).name}: boot {sim.boot_seconds:g} s, "
                                                   f"{sim.seconds_per_image:g} s/image, interval {sim.interval:g} s")
            self.stderr.write(f"wrote {options['plot']}")
        if options["json"]:
            for result in results:
                self.stdout.write(json.dumps(result))
            return
        self.stdout.write(" ".join(f"{key:>15}" for key in RESULT_KEYS))
        for result in results:
            self.stdout.write(" ".join(f"{result[key]!s:>15}" for key in RESULT_KEYS))

    def family(self, readme):
        report = family_report(load_family(TRACES))
        if not readme:
            self.stdout.write(report)
            return
        path = Path(readme)
        text = path.read_text()
        if not README_BLOCK.search(text):
            raise CommandError(f"{readme} has no <!-- simulate_scaling --family: begin/end --> block")
        path.write_text(README_BLOCK.sub(lambda m: m.group(1) + report + m.group(2), text))
        self.stdout.write(f"rewrote the table in {readme}")

    def write_family(self):
        for name, generate in FAMILY.items():
            with (TRACES / f"{name}.csv").open("w", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(["t", "images"])
                writer.writerows((f"{t:g}", images) for t, images in generate())
            self.stdout.write(f"wrote {TRACES / name}.csv")
