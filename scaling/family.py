"""A family of upload traces, generated from seeds, and the sweep of clouds it is judged in.

Pure Python. Each generator returns sorted (seconds, images) pairs; the same
seed always gives the same trace, and `manage.py simulate_scaling --write-family`
writes them to scaling/traces/ beside the four hand-made ones. Each trace
stresses one thing:

- diurnal: a compressed day (4 hours) of single images and small batches whose
  rate rises and falls twice, with an occasional large batch.
- ramp: uploads speeding up from nothing to a busy rate and back down.
- periodic: 5 images every 150 s, the scale-to-zero thrash case.
- spike5000: 5,000 images in one upload, more than the node cap drains quickly.
- heavy: a sustained heavy load of batches for 15 minutes.
- pauses: batches separated by pauses just past each of the policy's default
  windows (idle hold, EC2's minimum, the recurrence gap, the visibility
  timeout, the rate window), where an off-by-one window costs most.
"""

import itertools
import math
import random
from pathlib import Path

from scaling.simulate import SimulationSettings, load_trace, simulate

HOURS = 3600.0


def upload_size(rng: random.Random) -> int:
    """Mostly single images, some small batches, now and then a large one."""
    roll = rng.random()
    if roll < 0.65:
        return 1
    if roll < 0.95:
        return rng.randint(2, 24)
    return rng.randint(50, 200)


def poisson(rng: random.Random, rate_per_minute, start: float, end: float, peak: float):
    """Upload times of an inhomogeneous Poisson process (thinning), rate given per minute."""
    t, times = start, []
    while True:
        t += rng.expovariate(peak / 60)
        if t >= end:
            return times
        if rng.random() * peak <= rate_per_minute(t):
            times.append(round(t, 1))


def diurnal(seed=1) -> list[tuple[float, int]]:
    rng = random.Random(seed)
    length = 4 * HOURS

    def rate(t):  # two busy periods, quiet nights: 0.1 to 4 uploads a minute
        return 0.1 + 3.9 * math.sin(2 * math.pi * t / length) ** 2

    return [(t, upload_size(rng)) for t in poisson(rng, rate, 0.0, length, 4.0)]


def ramp(seed=2) -> list[tuple[float, int]]:
    rng = random.Random(seed)

    def rate(t):  # 0 → 8 uploads a minute over 20 minutes, 5 minutes flat, back down over 20
        rising, flat = 20 * 60.0, 25 * 60.0
        if t < rising:
            return 8 * t / rising
        if t < flat:
            return 8.0
        return max(0.0, 8 * (1 - (t - flat) / rising))

    return [(t, rng.randint(1, 30)) for t in poisson(rng, rate, 0.0, 45 * 60.0, 8.0)]


def periodic(seed=3) -> list[tuple[float, int]]:
    rng = random.Random(seed)
    return [(round(150.0 * i + rng.uniform(-5, 5) + 10, 1), 5) for i in range(18)]


def spike5000(seed=4) -> list[tuple[float, int]]:
    return [(10.0, 5000)]


def heavy(seed=5) -> list[tuple[float, int]]:
    rng = random.Random(seed)
    times = poisson(rng, lambda t: 6.0, 0.0, 15 * 60.0, 6.0)
    return [(t, rng.randint(16, 96)) for t in times]


# Just past the default windows (boot 70 s, interval 15 s): idle hold 55 s, EC2's 60 s minimum,
# recurrence 155 s, visibility timeout 300 s, rate window 600 s.
PAUSES = (56.0, 61.0, 156.0, 301.0, 601.0)


def pauses(seed=6) -> list[tuple[float, int]]:
    rng = random.Random(seed)
    t, trace = 10.0, []
    for pause in PAUSES:
        for _ in range(3):
            trace.append((round(t, 1), rng.randint(10, 40)))
            t += pause
    return trace


FAMILY = {
    "diurnal": diurnal,
    "ramp": ramp,
    "periodic": periodic,
    "spike5000": spike5000,
    "heavy": heavy,
    "pauses": pauses,
}


HAND_MADE = ("steady", "bursty", "spike", "idle")
# The clouds every trace is judged in, beside the default one.
SWEEP = {"boot_seconds": (30.0, 90.0, 180.0), "seconds_per_image": (0.05, 0.5, 2.0), "interval": (10.0, 30.0, 60.0)}


def load_family(directory) -> dict[str, list[tuple[float, int]]]:
    """The traces judged on: the hand-made ones, then the generated ones."""
    return {name: load_trace(Path(directory) / f"{name}.csv") for name in [*HAND_MADE, *FAMILY]}


def sweep_settings() -> list[SimulationSettings]:
    """Every combination of the swept boot times, seconds per image and intervals."""
    return [SimulationSettings(boot_seconds=boot, seconds_per_image=seconds, interval=interval)
            for boot, seconds, interval in itertools.product(*SWEEP.values())]


def sweep_cells(traces) -> list[tuple[str, SimulationSettings, dict, dict]]:
    """(trace name, cloud, imgsite's result, the seed's result) for every trace in every swept cloud."""
    return [(name, sim, simulate(trace, "imgsite", sim=sim), simulate(trace, "seed", sim=sim))
            for sim in sweep_settings() for name, trace in traces.items()]
