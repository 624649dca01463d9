"""Reading an untrusted upload without decoding its pixels: what it is (sniffing known
non-images, then Pillow restricted to the accepted formats), how large it is (the pixel cap, and
the pixels a file of its size may hold), whether it is complete, and how it is oriented. Every
refusal is an UndecodableImage with a code for programs and a sentence for people.

classifier.decoding decodes what passes; classifier.decode_budget bounds what decoding holds.
"""
import io
import logging
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image, UnidentifiedImageError, features

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
# Small pictures may compress very well (a flat-colour logo); only large ones can hurt.
RATIO_EXEMPT_PIXELS = 4_000_000

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
        data = read_bytes(fileobj)
    finally:
        if hasattr(fileobj, "seek"):
            fileobj.seek(0)
    with pillow_errors():
        image = open_checked(data)
        _check_complete(image.format, data)
        format = _format_name(image)
        width, height = _upright_size(image, data)
    return ImageHeader(format, width, height, CONTENT_TYPES[format])


def read_bytes(source):
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


def open_checked(data):
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
    check_pixels(image.width, image.height, len(data))
    return image


def check_pixels(width, height, size=None):
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


def _upright_size(image, data=None):
    """Width and height as displayed, i.e. after the EXIF orientation is applied."""
    if exif_orientation(image, data) in QUARTER_TURNS:
        return image.height, image.width
    return image.width, image.height


def exif_orientation(image, data=None):
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


@contextmanager
def pillow_errors():
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
