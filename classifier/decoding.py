"""Decoding an upload that classifier.headers let through to an upright 8-bit RGB picture.

Decoding makes one full-size picture at most (the codec's own), reduces it and converts it a
strip at a time; each process's decodes share a memory budget (classifier.decode_budget), so
that small files with huge pictures cannot exhaust a worker. Also the thumbnail.
"""
import io

from PIL import Image, ImageFile

from classifier.headers import QUARTER_TURNS, check_pixels, exif_orientation, open_checked, pillow_errors, read_bytes

TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
# Pixels converted at a time: the mode conversions' copies stay this small.
STRIP_PIXELS = 2**20
WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def open_image(source, min_side=None):
    """Fully decode bytes, a file, a path or a PIL image to an upright 8-bit RGB image.

    With `min_side`, the picture is reduced by a whole factor that keeps both sides at least
    `min_side` pixels: a JPEG is decoded at that DCT scale (1/2, 1/4 or 1/8), several times
    faster for a camera photo, and any other picture is box-reduced as it is converted to RGB,
    a strip at a time. The result's info["full_size"] is the upright size a full decode would
    have, so that a model input can be cut from the reduced picture exactly where it would be
    cut from the full one."""
    with pillow_errors():
        if isinstance(source, Image.Image):
            image, data = source, None
            check_pixels(image.width, image.height)
        else:
            data = read_bytes(source)
            image = open_checked(data)
        # Pillow's default, but it is process-wide: make sure nobody turned it on.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        image.seek(0)
        stored_size = image.size
        factor = prepare_reduced(image, min_side)
        image.load()
        orientation = exif_orientation(image, data)
        picture = _reduced_rgb(image, factor)
        if orientation in TRANSPOSES:
            picture = picture.transpose(TRANSPOSES[orientation])
        quarter_turn = orientation in QUARTER_TURNS
        picture.info["full_size"] = stored_size[::-1] if quarter_turn else stored_size
        return picture


def prepare_reduced(image, min_side):
    """Set a JPEG (opened, not loaded) to decode at the DCT scale that keeps both sides at
    least `min_side`; returns the whole factor by which the decoded picture is to be reduced."""
    if not min_side:
        return 1
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (min_side, min_side))
    return max(1, min(image.size) // min_side)


def _reduced_rgb(image, factor):
    """The decoded picture as 8-bit RGB, box-reduced `factor` times per side. Other modes are
    converted a strip of rows at a time, so that no second full-size copy is ever made."""
    if is_plain_rgb(image):
        return image.reduce(factor) if factor > 1 else image
    width, height = image.size
    levels = grey_levels(image) if image.mode in WIDE_GREY else None
    rows = max(factor, STRIP_PIXELS // width // factor * factor)
    picture = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = to_rgb(image.crop((0, top, width, min(height, top + rows))), levels)
        picture.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return picture


def is_plain_rgb(image):
    return image.mode == "RGB" and "transparency" not in image.info


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
