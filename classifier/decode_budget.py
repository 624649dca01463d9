"""How much memory decoding an upload takes, from its header alone, and the budget that every
decode of one process shares, so that a decompression bomb fails one image with a reason
instead of taking the worker (and other people's images) with it."""
import threading
from collections import deque
from contextlib import contextmanager

from django.conf import settings

from classifier.decoding import STRIP_PIXELS, is_plain_rgb, prepare_reduced
from classifier.headers import UndecodableImage, open_checked, pillow_errors, read_bytes

MB = 2**20
# What a decode holds besides its pictures: the codec's rows and tables, the thumbnail, the model input.
WORKING_BYTES = 16 * MB


def decode_memory(data, min_side=None):
    """An upper bound of the bytes that open_image(data, min_side) holds at its peak, from the
    header alone: the codec's full-size buffers, the decoded picture in its own mode, the strips
    being converted (a copy per mode they pass through), and the reduced RGB picture with its
    upright copy."""
    with pillow_errors():
        image = open_checked(read_bytes(data))
        full_pixels = image.width * image.height
        codec = full_pixels * _codec_bytes_per_pixel(image)
        factor = prepare_reduced(image, min_side)
    width, height = image.size
    decoded = width * height * _pixel_bytes(image.mode)
    converting = 0 if is_plain_rgb(image) else STRIP_PIXELS * 5 * 4
    picture = -(-width // factor) * -(-height // factor) * 4
    return WORKING_BYTES + len(data) + codec + decoded + converting + 2 * picture


def _pixel_bytes(mode):
    """Bytes per pixel of Pillow's memory for `mode`: three bands take four bytes."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _codec_bytes_per_pixel(image):
    """Bytes per full-size pixel that the codec holds beside Pillow's picture while decoding."""
    if image.format in ("JPEG", "MPO"):
        # A progressive JPEG keeps every DCT coefficient (2 bytes) of every component.
        return 2 * image.layers if image.info.get("progressive") or image.info.get("progression") else 0
    if image.format == "WEBP":
        return 12  # libwebp's canvas, its copy of the previous frame, and the bytes handed over, RGBA each
    if image.format in ("AVIF", "HEIF"):
        return 10  # the decoded planes (up to 16 bits, 4:4:4) and the interleaved RGB(A) copy
    if image.format == "TIFF":
        # One strip may hold the whole picture, in its stored sample size.
        bits, samples = image.tag_v2.get(258, 8), image.tag_v2.get(277, 1)
        return -(-sum(bits if isinstance(bits, tuple) else (bits,) * samples) // 8)
    return 0


class MemoryBudget:
    """Bytes that the decodes of one process may hold at once. A decode waits for its share,
    first come first served, so that a large one is not starved by a stream of small ones."""

    def __init__(self, capacity=None):
        self._capacity = capacity
        self.in_use = 0
        self._waiting = deque()
        self._changed = threading.Condition()

    @property
    def capacity(self):
        return self._capacity or settings.DECODE_MEMORY_BUDGET

    @contextmanager
    def reserve(self, amount):
        amount = min(amount, self.capacity)
        with self._changed:
            turn = object()
            self._waiting.append(turn)
            self._changed.wait_for(lambda: self._waiting[0] is turn and self.in_use + amount <= self.capacity)
            self._waiting.popleft()
            self.in_use += amount
            self._changed.notify_all()  # the next in line may fit beside this one
        try:
            yield amount
        finally:
            with self._changed:
                self.in_use -= amount
                self._changed.notify_all()


# Process-wide: every thread of a worker process decodes within this one budget.
DECODE_BUDGET = MemoryBudget()


@contextmanager
def memory_reserved(data, min_side=None, budget=DECODE_BUDGET):
    """Hold `budget` for decoding `data` with open_image: wait for the share its header says the
    decode needs. UndecodableImage if the header is refused, or if the share alone is over
    settings.DECODE_MAX_IMAGE_BYTES."""
    need = decode_memory(data, min_side)
    limit = settings.DECODE_MAX_IMAGE_BYTES
    if need > limit:
        raise UndecodableImage("too_much_memory", f"The image would take about {need / MB:,.0f} MB to decode "
                                                  f"(limit {limit / MB:,.0f} MB): send it smaller, e.g. as a JPEG.")
    with budget.reserve(need):
        yield need
