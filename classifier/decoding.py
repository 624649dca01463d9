"""Decode untrusted image uploads safely: sniff, cap the size, then decode to 8-bit RGB.

Reading a header never decodes pixels. Decoding makes one full-size picture at most (the
codec's own), reduces it and converts it a strip at a time, and each process's decodes share a
memory budget (`DECODE_BUDGET`), so that small files with huge pictures cannot exhaust a worker.
"""

import io
import logging
import re
import threading
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageFile, UnidentifiedImageError, features

try:
    import pillow_heif
except ImportError:  # HEIC is then refused with a reason, like any unsupported format
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "HEIF": "image/heif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
AVIF_SUPPORTED = features.check("avif")
ACCEPTED_FORMATS = set(CONTENT_TYPES)
if not AVIF_SUPPORTED:
    ACCEPTED_FORMATS.discard("AVIF")
if pillow_heif is None:
    ACCEPTED_FORMATS.discard("HEIF")
UPLOAD_HINT = "upload JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP or TIFF."
AVIF_BRANDS = {b"avif", b"avis"}
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
EXIF_ORIENTATION = 0x0112
QUARTER_TURNS = {5, 6, 7, 8}
TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
# Small pictures may compress very well (a flat-colour logo); only large ones can hurt.
RATIO_EXEMPT_PIXELS = 4_000_000
MB = 2**20
# Pixels converted at a time: the mode conversions' copies stay this small.
STRIP_PIXELS = 2**20
# What a decode holds besides its pictures: the codec's rows and tables, the thumbnail, the model input.
WORKING_BYTES = 16 * MB

# Each refusal: a machine-readable code (the API maps codes to HTTP statuses) and a sentence.
EMPTY = ("empty", "The file is empty.")
TEXT = ("not_an_image", "Not an image: looks like HTML/text.")
TRUNCATED = ("truncated", "The image is truncated or corrupt.")
UNRECOGNISED = ("unsupported", "Unrecognised image format; " + UPLOAD_HINT)
SVG = ("unsupported", "SVG is not supported; " + UPLOAD_HINT)
PDF = ("unsupported", "PDF is not supported; " + UPLOAD_HINT)
ZIP = ("not_an_image", "Not an image: looks like a ZIP archive (or an Office document).")
GZIP = ("not_an_image", "Not an image: looks like a compressed (gzip) file.")
NO_AVIF = ("unsupported", "AVIF is not supported on this server; upload JPEG, PNG, GIF, WebP, BMP or TIFF.")
NO_HEIF = ("unsupported", "HEIC is not supported on this server; upload JPEG, PNG, GIF, WebP, BMP or TIFF.")
BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


class UndecodableImage(ValueError):
    """Bad image input: `code` for programs (e.g. "truncated"), str(exc) for people."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ImageHeader:
    """What the header says; width and height are as displayed (EXIF orientation applied)."""

    format: str
    width: int
    height: int
    content_type: str


def max_image_pixels():
    """The pixel cap: settings.MAX_IMAGE_PIXELS, tightened by Pillow's own limit if lower."""
    limit = settings.MAX_IMAGE_PIXELS
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    return limit


def size_problem(size):
    """Why a file of `size` bytes is refused before it is read (an UndecodableImage), or None."""
    if size == 0:
        return UndecodableImage(*EMPTY)
    if size > settings.MAX_UPLOAD_BYTES:
        return UndecodableImage("too_large", f"The file is too large: {size:,} bytes "
                                             f"(limit {settings.MAX_UPLOAD_BYTES:,}).")
    return None


def read_header(fileobj):
    """Identify format and size without decoding pixels, in time and memory bounded by the
    file's size; leaves fileobj at position 0."""
    try:
        data = _read_bytes(fileobj)
    finally:
        if hasattr(fileobj, "seek"):
            fileobj.seek(0)
    with _pillow_errors():
        image = _open_checked(data)
        _check_complete(image.format, data)
        format = _format_name(image)
        width, height = _upright_size(image, data)
    return ImageHeader(format, width, height, CONTENT_TYPES[format])


def open_image(source, min_side=None):
    """Fully decode bytes, a file, a path or a PIL image to an upright 8-bit RGB image.

    With `min_side`, the picture is reduced by a whole factor that keeps both sides at least
    `min_side` pixels: a JPEG is decoded at that DCT scale (1/2, 1/4 or 1/8), several times
    faster for a camera photo, and any other picture is box-reduced as it is converted to RGB,
    a strip at a time. The result's info["full_size"] is the upright size a full decode would
    have, so that a model input can be cut from the reduced picture exactly where it would be
    cut from the full one."""
    with _pillow_errors():
        if isinstance(source, Image.Image):
            image, data = source, None
            _check_pixels(image.width, image.height)
        else:
            data = _read_bytes(source)
            image = _open_checked(data)
        # Pillow's default, but it is process-wide: make sure nobody turned it on.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        image.seek(0)
        stored_size = image.size
        factor = _prepare_reduced(image, min_side)
        image.load()
        orientation = _orientation(image, data)
        picture = _reduced_rgb(image, factor)
        if orientation in TRANSPOSES:
            picture = picture.transpose(TRANSPOSES[orientation])
        quarter_turn = orientation in QUARTER_TURNS
        picture.info["full_size"] = stored_size[::-1] if quarter_turn else stored_size
        return picture


def decode_memory(data, min_side=None):
    """An upper bound of the bytes that open_image(data, min_side) holds at its peak, from the
    header alone: the codec's full-size buffers, the decoded picture in its own mode, the strips
    being converted (a copy per mode they pass through), and the reduced RGB picture with its
    upright copy."""
    with _pillow_errors():
        image = _open_checked(_read_bytes(data))
        full_pixels = image.width * image.height
        codec = full_pixels * _codec_bytes_per_pixel(image)
        factor = _prepare_reduced(image, min_side)
    width, height = image.size
    decoded = width * height * _pixel_bytes(image.mode)
    converting = 0 if _is_plain_rgb(image) else STRIP_PIXELS * 5 * 4
    picture = -(-width // factor) * -(-height // factor) * 4
    return WORKING_BYTES + len(data) + codec + decoded + converting + 2 * picture


def _prepare_reduced(image, min_side):
    """Set a JPEG (opened, not loaded) to decode at the DCT scale that keeps both sides at
    least `min_side`; returns the whole factor by which the decoded picture is to be reduced."""
    if not min_side:
        return 1
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (min_side, min_side))
    return max(1, min(image.size) // min_side)


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


def make_thumbnail(image, size=256):
    """A JPEG thumbnail whose longest side is at most `size`, aspect kept. Bicubic (antialiased,
    like every Pillow downscale) after a box reduction by a whole factor (reducing_gap): about
    half the cost of bicubic all the way from a photo's size, and alike at this size."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    scale = min(1.0, size / max(image.size))
    thumbnail = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BICUBIC, reducing_gap=1.5)
    output = io.BytesIO()
    thumbnail.save(output, format="JPEG", quality=80)
    return output.getvalue()


WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image, levels=None):
    """Convert any decoded mode to 8-bit RGB; alpha and transparency go onto white. Wide grey
    is scaled by `levels` (scale, offset), by default those of this image's own range."""
    if image.mode in WIDE_GREY:
        image = _to_8bit_grey(image, levels or grey_levels(image))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def grey_levels(image):
    """How 16-bit or 32-bit grey maps to 0..255: the full 16-bit range if it fits, else the
    image's own range, instead of clipping everything to white."""
    low, high = image.getextrema()
    if image.mode != "F" and 0 <= low and high <= 65535:
        return 255 / 65535, 0
    scale = 255 / (high - low) if high > low else 0
    return scale, -low * scale


def _to_8bit_grey(image, levels):
    scale, offset = levels
    image = image.convert("F") if image.mode == "F" else image.convert("I")
    return image.point(lambda value: value * scale + offset).convert("L")


def _reduced_rgb(image, factor):
    """The decoded picture as 8-bit RGB, box-reduced `factor` times per side. Other modes are
    converted a strip of rows at a time, so that no second full-size copy is ever made."""
    if _is_plain_rgb(image):
        return image.reduce(factor) if factor > 1 else image
    width, height = image.size
    levels = grey_levels(image) if image.mode in WIDE_GREY else None
    rows = max(factor, STRIP_PIXELS // width // factor * factor)
    picture = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = to_rgb(image.crop((0, top, width, min(height, top + rows))), levels)
        picture.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return picture


def _is_plain_rgb(image):
    return image.mode == "RGB" and "transparency" not in image.info


def _upright_size(image, data=None):
    """Width and height as displayed, i.e. after the EXIF orientation is applied."""
    if _orientation(image, data) in QUARTER_TURNS:
        return image.height, image.width
    return image.width, image.height


def _orientation(image, data=None):
    """The EXIF orientation (1 if none or unreadable), without decoding pixels: a PNG's eXIf
    chunk may follow its pixels, and Pillow would decode them all to look for it."""
    if image.format == "PNG" and "exif" not in image.info and data is not None:
        image.info["exif"] = _png_exif(data)
    try:
        return image.getexif().get(EXIF_ORIENTATION) or 1
    except Exception as error:
        # Broken EXIF should not cost us an otherwise good picture.
        logger.info("Ignoring unreadable EXIF: %s", error)
        return 1


def _png_exif(data):
    """The eXIf chunk wherever it is, prefixed as Pillow keeps it; b"" if there is none."""
    position = 8
    while position + 8 <= len(data):
        length, kind = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8]
        if kind == b"eXIf":
            return b"Exif\x00\x00" + data[position + 8 : position + 8 + length]
        if kind == b"IEND":
            break
        position += 12 + length
    return b""


def _read_bytes(source):
    """The whole input as bytes, refusing empty and oversized files."""
    limit = settings.MAX_UPLOAD_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        with open(source, "rb") as file:
            data = file.read(limit + 1)
    else:
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(limit + 1)
    if not data:
        raise UndecodableImage(*EMPTY)
    if len(data) > limit:
        raise UndecodableImage("too_large", f"The file is too large (limit {limit:,} bytes).")
    return data


def sniff(data):
    """(code, reason) if the first bytes show a known non-image, else None."""
    head = data[:1024]
    if head.startswith(b"%PDF"):
        return PDF
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return ZIP
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS and not AVIF_SUPPORTED:
        return NO_AVIF
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS and pillow_heif is None:
        return NO_HEIF
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return SVG
    if _looks_like_text(head):
        return TEXT
    return None


def _looks_like_text(head):
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # Only a multi-byte character cut off at the end of the sample is forgiven.
        if error.start < len(head) - 3:
            return False
        text = head[: error.start].decode("utf-8")
    return all(char.isprintable() or char in "\t\r\n\f" for char in text)


def _open_checked(data):
    """Image.open restricted to accepted formats, with the pixel cap checked before decoding."""
    problem = sniff(data)
    if problem:
        raise UndecodableImage(*problem)
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(ACCEPTED_FORMATS))
    except UnidentifiedImageError:
        if data[4:8] == b"ftyp" and data[8:12] in AVIF_BRANDS | HEIF_BRANDS:
            raise UndecodableImage(*TRUNCATED) from None  # an AVIF/HEIC container we could not read
        raise
    _check_pixels(image.width, image.height, len(data))
    return image


def _check_pixels(width, height, size=None):
    """The pixel cap, and, given the file's `size`, the pixels a file of that size may hold."""
    limit = max_image_pixels()
    if width * height > limit:
        raise UndecodableImage("too_many_pixels", f"The image is too large: {width}×{height} pixels (limit {limit:,}).")
    ratio = settings.MAX_PIXELS_PER_BYTE
    if size and ratio and width * height > max(RATIO_EXEMPT_PIXELS, ratio * size):
        raise UndecodableImage("too_many_pixels", f"The image is {width}×{height} pixels in only {size:,} bytes "
                                                  f"(limit {ratio} pixels per byte): a photo never compresses that "
                                                  "well. Send it smaller, or as a JPEG.")


def _format_name(image):
    # Phone cameras write multi-picture JPEGs, which Pillow calls MPO.
    return "JPEG" if image.format == "MPO" else image.format


def _check_complete(format, data):
    """Cheap end-of-file checks that catch truncated uploads without decoding pixels."""
    complete = True
    if format == "PNG":
        # Walks the chunks to IEND checking CRCs; no inflating.
        Image.open(io.BytesIO(data), formats=["PNG"]).verify()
    elif format in ("JPEG", "MPO"):
        complete = _jpeg_has_end(data)
    elif format == "WEBP":
        complete = int.from_bytes(data[4:8], "little") + 8 <= len(data)
    if not complete:
        raise UndecodableImage(*TRUNCATED)


def _jpeg_has_end(data):
    """True if an end-of-image marker follows the first scan (EXIF thumbnails come before it)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            position += 1  # Pillow skips junk between segments, so we do too.
            continue
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
        elif marker == 0xDA:
            return data.find(b"\xff\xd9", position) != -1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return False


@contextmanager
def _pillow_errors():
    """Turn bomb warnings into errors, and every Pillow failure into UndecodableImage."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except UndecodableImage:
            raise
        except Exception as error:
            logger.info("Undecodable image: %s", error)
            raise UndecodableImage(*_problem(error)) from error


def _problem(error):
    if isinstance(error, BOMB_ERRORS):
        return "too_many_pixels", _bomb_reason(str(error))
    if isinstance(error, UnidentifiedImageError):
        return UNRECOGNISED
    if isinstance(error, MemoryError):
        return "too_many_pixels", "The image is too large to decode."
    return TRUNCATED


def _bomb_reason(message):
    match = re.search(r"\((\d+) pixels\)", message)
    limit = max_image_pixels()
    if match:
        pixels = int(match.group(1))
        return f"The image is too large: {pixels:,} pixels (limit {limit:,})."
    return f"The image is too large (limit {limit:,} pixels)."
