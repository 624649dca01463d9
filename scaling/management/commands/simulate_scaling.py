"""Replay an arrival trace against the imgsite and seed scaling policies."""

import json

from django.core.management.base import BaseCommand, CommandError

from scaling.autoscaler import policy_settings
from scaling.policy import PolicySettings
from scaling.simulate import (
    POLICIES,
    RESULT_KEYS,
    SimulationSettings,
    compare,
    load_trace,
)


class Command(BaseCommand):
    help = (
        "Simulate the autoscaler on a CSV trace (t,images) and compare it with the seed controller. "
        "The policy runs with PolicySettings' defaults, so results do not depend on the local settings."
    )

    def add_arguments(self, parser):
        parser.add_argument("trace", help="CSV file with header t,images")
        parser.add_argument("--policy", choices=[*POLICIES, "both"], default="both")
        parser.add_argument("--from-settings", action="store_true",
                            help="use the AUTOSCALE_* settings, as `autoscale` would, instead of the defaults")
        parser.add_argument("--boot-seconds", type=float, default=SimulationSettings.boot_seconds)
        parser.add_argument("--seconds-per-image", type=float, default=SimulationSettings.seconds_per_image,
                            help="simulated service time per image")
        parser.add_argument("--interval", type=float, default=SimulationSettings.interval,
                            help="seconds between decisions")
        parser.add_argument("--json", action="store_true", help="one JSON object per policy per line")

    def handle(self, *args, **options):
        try:
            trace = load_trace(options["trace"])
        except (OSError, KeyError, ValueError) as e:
            raise CommandError(f"cannot read trace {options['trace']}: {e}") from e
        policy = policy_settings() if options["from_settings"] else PolicySettings()
        sim = SimulationSettings(
            boot_seconds=options["boot_seconds"],
            seconds_per_image=options["seconds_per_image"],
            interval=options["interval"],
        )
        policies = POLICIES if options["policy"] == "both" else (options["policy"],)
        results = compare(trace, policy, sim, policies)

        if options["json"]:
            for result in results:
                self.stdout.write(json.dumps(result))
            return
        self.stdout.write(" ".join(f"{key:>16}" for key in RESULT_KEYS))
        for result in results:
            self.stdout.write(" ".join(f"{result[key]!s:>16}" for key in RESULT_KEYS))
