"""Image test corpus built in memory: bad uploads and odd-but-valid ones (filename -> bytes)."""

import io
import random
import struct
import zipfile
import zlib
from functools import cache

import numpy as np
from PIL import Image
from skimage import data

PHOTOS = {"chelsea": data.chelsea, "coffee": data.coffee, "astronaut": data.astronaut, "rocket": data.rocket}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXIF_ORIENTATION = 0x0112

# Accepted top-1 classes of the sample photos, by WordNet id: tabby, tiger cat, Egyptian cat;
# espresso, cup; missile, projectile.
ACCEPTED = {
    "chelsea": {"n02123045", "n02123159", "n02124075"},
    "coffee": {"n07920052", "n07930864"},
    "rocket": {"n03773504", "n04008634"},
}

# A fragment of the reason each bad file must be refused with.
BAD_FILE_REASONS = {
    "empty.jpg": "The file is empty.",
    "notes.jpg": "Not an image: looks like HTML/text.",
    "page.jpg": "Not an image: looks like HTML/text.",
    "truncated.jpg": "The image is truncated or corrupt.",
    "truncated.png": "The image is truncated or corrupt.",
    "bomb.png": "The image is too large: 10,000,000,000 pixels",
    "bomb_under_pillow_limit.png": "The image is too large: 8000×8000 pixels",
    "drawing.svg": "SVG is not supported",
    "document.pdf": "PDF is not supported",
    "archive.zip": "Not an image: looks like a ZIP archive",
    "broken.heic": "The image is truncated or corrupt.",
    "noise.jpg": "Unrecognised image format",
}


@cache
def photo(name="chelsea"):
    """A scikit-image sample photo as an RGB PIL image (chelsea 451×300, coffee 600×400)."""
    return Image.fromarray(PHOTOS[name]())


def photo_jpeg(name="chelsea", max_side=None):
    """A real photo as JPEG bytes, optionally shrunk so its longest side is max_side."""
    image = photo(name).copy()
    if max_side:
        image.thumbnail((max_side, max_side))
    return encode(image, "JPEG", quality=90)


@cache
def photo_avif(name="chelsea"):
    """A real photo as AVIF (Pillow's own plugin, AV1 by libaom)."""
    return encode(photo(name), "AVIF", quality=80, speed=8)


@cache
def photo_heic(name="chelsea"):
    """A real photo as HEIC (HEVC), as phones take them; pillow-heif encodes it."""
    import pillow_heif  # registers the HEIF format with Pillow

    pillow_heif.register_heif_opener()
    return encode(photo(name), "HEIF", quality=80)


def encode(image, format, **options):
    output = io.BytesIO()
    image.save(output, format=format, **options)
    return output.getvalue()


def truncated_tiff():
    """The first half of a TIFF of chelsea: its header passes the upload check, its pixels fail in the worker."""
    data = encode(photo("chelsea"), "TIFF")
    return data[: len(data) // 2]


def bad_files():
    """Uploads that must be refused, keyed by filename (see BAD_FILE_REASONS)."""
    jpeg = photo_jpeg()
    png = encode(photo("chelsea"), "PNG")
    return {
        "empty.jpg": b"",
        "notes.jpg": "Shopping list:\n- milk\n- crème fraîche\n".encode() * 20,
        "page.jpg": b"<!DOCTYPE html>\n<html><head><title>404</title></head></html>\n",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "bomb.png": png_bomb(100_000, 100_000),
        "bomb_under_pillow_limit.png": png_bomb(8000, 8000),
        "drawing.svg": svg(),
        "document.pdf": pdf(),
        "archive.zip": zip_archive(),
        "broken.heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        "noise.jpg": random.Random(7).randbytes(4096),
    }


def odd_but_valid_files():
    """Unusual but valid images that must decode to RGB, keyed by filename."""
    chelsea = photo("chelsea")
    return {
        "cmyk.jpg": encode(chelsea.convert("CMYK"), "JPEG", quality=90),
        "grey16.png": encode(grey16(), "PNG"),
        "palette_transparent.png": encode(palette_with_hole(), "PNG"),
        "rgba.png": encode(rgba_half_transparent(), "PNG"),
        "grey.jpg": encode(photo("coffee").convert("L"), "JPEG", quality=90),
        "animated.gif": animated_gif(),
        "photo.webp": encode(photo("coffee"), "WEBP", quality=85),
        "photo.bmp": encode(photo("astronaut"), "BMP"),
        "photo.tiff": encode(photo("astronaut"), "TIFF", compression="tiff_lzw"),
        "photo.avif": photo_avif("coffee"),
        "photo.heic": photo_heic("chelsea"),
        "actually_jpeg.png": photo_jpeg(),
        "rotated_exif.jpg": exif_rotated_jpeg(),
    }


def oversize_file(limit):
    """limit + 1 bytes: a JPEG/JFIF header followed by padding."""
    header = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return header + bytes(limit + 1 - len(header))


def png_bomb(width, height):
    """A tiny PNG declaring width×height RGB pixels; only a header check can stop it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def flat_png(width, height, color_type=2, bit_depth=8, chunks=()):
    """A complete, valid PNG of width×height all-zero samples (colour type and bit depth as in
    IHDR). Each megabyte of rows is deflated once and repeated: a full flush makes every
    segment after the first byte-identical, so even a 300 MB picture takes a moment."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
    per_segment = max(1, 2**20 // len(row))
    segments, rest = divmod(height, per_segment)
    if not segments:
        return png_with_pixels(width, height, color_type, bit_depth, chunks, zlib.compress(row * height, 9))
    compressor, segment = zlib.compressobj(9), row * per_segment
    first = compressor.compress(segment) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(segment) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(row * rest) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(segments):
        checksum = zlib.adler32(segment, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    # An empty final block with fixed codes, then the Adler-32 of everything inflated.
    pixels = first + repeated * (segments - 1) + last + b"\x03\x00" + struct.pack(">I", checksum)
    return png_with_pixels(width, height, color_type, bit_depth, chunks, pixels)


def png_with_pixels(width, height, color_type, bit_depth, chunks, pixels):
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + b"".join(png_chunk(kind, body) for kind, body in chunks)
            + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b""))


@cache
def decode_bombs():
    """Small files under the pixel cap whose full decode takes hundreds of MB, keyed by filename:
    transparent palette, grey+alpha and 16-bit PNGs, and a lossless WebP."""
    transparent_palette = [(b"PLTE", b"\x00\x00\x00\xff\xff\xff"), (b"tRNS", b"\x00")]
    return {
        "palette_transparent_40mp.png": flat_png(8000, 5000, color_type=3, bit_depth=1, chunks=transparent_palette),
        "palette4_transparent_36mp.png": flat_png(6000, 6000, color_type=3, bit_depth=4, chunks=transparent_palette),
        "grey16_36mp.png": flat_png(6000, 6000, color_type=0, bit_depth=16),
        "grey_alpha_36mp.png": flat_png(6000, 6000, color_type=4, bit_depth=8),
        "rgba16_36mp.png": flat_png(6000, 6000, color_type=6, bit_depth=16),
        "rgb16_40mp.png": flat_png(8000, 5000, color_type=2, bit_depth=16),
        "transparent_40mp.webp": encode(Image.new("RGBA", (8000, 5000)), "WEBP", lossless=True, quality=0),
    }


def png_chunk(kind, body):
    checksum = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)


def svg():
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b'<circle cx="50" cy="50" r="40" fill="red"/></svg>\n'
    )


def pdf():
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def zip_archive():
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        archive.writestr("photo.jpg", photo_jpeg(max_side=64))
    return output.getvalue()


def grey16():
    """The astronaut in 16-bit grey (mode I;16), using the full 0..65535 range."""
    grey = np.asarray(photo("astronaut").convert("L"), dtype=np.uint16) * 257
    return Image.fromarray(grey)


def palette_with_hole():
    """Chelsea as a palette image whose top-left 100×100 uses a transparent black index."""
    image = photo("chelsea").quantize(colors=255)
    image.putpalette(image.getpalette()[: 255 * 3] + [0, 0, 0])
    image.paste(255, (0, 0, 100, 100))
    image.info["transparency"] = 255
    return image


def rgba_half_transparent():
    """Chelsea with a fully transparent left half."""
    image = photo("chelsea").convert("RGBA")
    alpha = Image.new("L", image.size, 255)
    alpha.paste(0, (0, 0, image.width // 2, image.height))
    image.putalpha(alpha)
    return image


def animated_gif():
    """Two frames: chelsea, then chelsea in negative."""
    first = photo("chelsea")
    second = Image.fromarray(255 - np.asarray(first))
    output = io.BytesIO()
    first.save(output, "GIF", save_all=True, append_images=[second], duration=100)
    return output.getvalue()


def exif_rotated_jpeg():
    """Chelsea stored rotated a quarter turn left, with EXIF Orientation=6 to undo it."""
    stored = photo("chelsea").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return encode(stored, "JPEG", quality=90, exif=exif.tobytes())
