"""The decode memory budget: the header's estimate bounds what a decode really takes, a process's
decodes wait for their share of the budget, and an image too large for it fails with a reason."""
import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings

from classifier.decode_budget import MB, MemoryBudget, decode_memory, memory_reserved
from classifier.headers import UndecodableImage
from classifier.pipeline import DECODE_MIN_SIDE
from tests.conftest import wait_until
from tests.corpus import decode_bombs, encode, photo

# Decodes one file as the worker does and prints the growth of the peak resident set, in bytes.
MEASURE = """
import sys
from pathlib import Path
import django
django.setup()
from classifier.decoding import make_thumbnail, open_image

def kb(field):
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status[field].split()[0]) * 1024

data = Path(sys.argv[1]).read_bytes()
before = kb("VmRSS")
make_thumbnail(open_image(data, min_side=int(sys.argv[2])))
print(kb("VmHWM") - before)
"""


def peak_of_decoding(path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "MAX_PIXELS_PER_BYTE": "0"}
    answer = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(DECODE_MIN_SIDE)], env=env, text=True,
                            capture_output=True, cwd=settings.BASE_DIR, timeout=120, check=True)
    return int(answer.stdout.split()[-1])


def progressive_camera_photo():
    image = photo("coffee")
    return encode(image.resize((image.width * 8, image.height * 8)), "JPEG", quality=90, progressive=True)


@pytest.mark.e2e
def test_the_estimate_bounds_what_each_decode_really_takes(tmp_path, settings):
    settings.MAX_PIXELS_PER_BYTE = 0
    files = {**decode_bombs(), "progressive.jpg": progressive_camera_photo()}
    lines = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        estimate, peak = decode_memory(data, DECODE_MIN_SIDE), peak_of_decoding(tmp_path / name)
        lines.append((name, estimate, peak))
        print(f"{name}: estimated {estimate / MB:.0f} MiB, took {peak / MB:.0f} MiB")
    for name, estimate, peak in lines:
        assert peak <= estimate, name
    # Converted a strip at a time: far below the old 16 bytes per pixel of full-size copies.
    assert dict((name, peak) for name, _, peak in lines)["palette_transparent_40mp.png"] < 100 * MB


def test_a_transparent_palette_bomb_is_estimated_at_its_reduced_cost(settings):
    settings.MAX_PIXELS_PER_BYTE = 0
    bombs = decode_bombs()
    # One byte per pixel decoded, then converted in strips: not the 16 bytes per pixel of full-size copies.
    assert decode_memory(bombs["palette_transparent_40mp.png"], DECODE_MIN_SIDE) < 3 * 40_000_000
    assert decode_memory(bombs["transparent_40mp.webp"], DECODE_MIN_SIDE) > 12 * 40_000_000


def test_an_image_whose_estimate_is_over_the_per_image_bound_fails_with_a_reason(settings):
    settings.MAX_PIXELS_PER_BYTE = 0
    settings.DECODE_MAX_IMAGE_BYTES = 256 * MB
    with pytest.raises(UndecodableImage) as caught, memory_reserved(decode_bombs()["transparent_40mp.webp"],
                                                                    DECODE_MIN_SIDE, MemoryBudget(512 * MB)):
        pass
    assert caught.value.code == "too_much_memory"
    assert str(caught.value).startswith("The image would take about ")
    assert str(caught.value).endswith(" MB to decode (limit 256 MB): send it smaller, e.g. as a JPEG.")


def test_a_refused_header_is_refused_before_any_reservation():
    budget = MemoryBudget(100)
    with pytest.raises(UndecodableImage, match="HTML"), memory_reserved(b"<html>", budget=budget):
        pass
    assert budget.in_use == 0


class Holder(threading.Thread):
    """Reserves `amount` of `budget` and holds it until released."""

    def __init__(self, budget, amount):
        super().__init__(daemon=True)
        self.budget, self.amount = budget, amount
        self.holding, self.release = threading.Event(), threading.Event()
        self.start()

    def run(self):
        with self.budget.reserve(self.amount):
            self.holding.set()
            self.release.wait(10)


def waiting(budget, count):
    return lambda: len(budget._waiting) == count


def test_a_decode_waits_until_its_share_is_free():
    budget = MemoryBudget(100)
    first = Holder(budget, 70)
    assert first.holding.wait(5)
    second = Holder(budget, 50)
    wait_until(waiting(budget, 1), timeout=5, message="the second decode to wait")
    assert not second.holding.is_set() and budget.in_use == 70
    first.release.set()
    assert second.holding.wait(5) and budget.in_use == 50
    second.release.set()
    second.join(5)
    assert budget.in_use == 0


def test_decodes_get_their_share_first_come_first_served():
    budget = MemoryBudget(100)
    first = Holder(budget, 70)
    assert first.holding.wait(5)
    large = Holder(budget, 50)
    wait_until(waiting(budget, 1), timeout=5, message="the large decode to wait")
    small = Holder(budget, 20)  # would fit beside the first, but the large one came earlier
    wait_until(waiting(budget, 2), timeout=5, message="the small decode to wait")
    assert not small.holding.is_set()
    first.release.set()
    assert large.holding.wait(5) and small.holding.wait(5)
    assert budget.in_use == 70
    large.release.set()
    small.release.set()


def test_a_share_larger_than_the_whole_budget_takes_the_whole_budget():
    budget = MemoryBudget(100)
    with budget.reserve(500) as amount:
        assert amount == 100 and budget.in_use == 100
    assert budget.in_use == 0


def test_the_budget_is_freed_when_the_decode_fails():
    budget = MemoryBudget(100)
    with pytest.raises(ValueError), budget.reserve(60):
        raise ValueError("bad pixels")
    assert budget.in_use == 0 and not budget._waiting


def test_the_process_budget_follows_the_setting(settings):
    settings.DECODE_MEMORY_BUDGET = 123 * MB
    assert MemoryBudget().capacity == 123 * MB
