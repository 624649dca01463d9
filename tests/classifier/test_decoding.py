import io
import struct
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from classifier import decoding, headers
from classifier.decoding import make_thumbnail, open_image
from classifier.headers import UndecodableImage, read_header
from tests.corpus import (
    BAD_FILE_REASONS,
    bad_files,
    decode_bombs,
    encode,
    flat_png,
    grey16,
    odd_but_valid_files,
    oversize_file,
    palette_with_hole,
    photo,
    photo_jpeg,
    png_chunk,
    rgba_half_transparent,
)

BAD = bad_files()
ODD = odd_but_valid_files()

# filename -> (format, width, height) as displayed.
ODD_EXPECTED = {
    "cmyk.jpg": ("JPEG", 451, 300),
    "grey16.png": ("PNG", 512, 512),
    "palette_transparent.png": ("PNG", 451, 300),
    "rgba.png": ("PNG", 451, 300),
    "grey.jpg": ("JPEG", 600, 400),
    "animated.gif": ("GIF", 451, 300),
    "photo.webp": ("WEBP", 600, 400),
    "photo.bmp": ("BMP", 512, 512),
    "photo.tiff": ("TIFF", 512, 512),
    "photo.avif": ("AVIF", 600, 400),
    "photo.heic": ("HEIF", 451, 300),
    "actually_jpeg.png": ("JPEG", 451, 300),
    "rotated_exif.jpg": ("JPEG", 451, 300),
}


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def mean_difference(first, second):
    return float(np.abs(pixels(first) - pixels(second)).mean())


def test_corpus_covers_every_bad_file():
    assert BAD.keys() == BAD_FILE_REASONS.keys()
    assert ODD.keys() == ODD_EXPECTED.keys()


@pytest.mark.parametrize("name", BAD_FILE_REASONS)
def test_read_header_refuses_bad_file_with_reason(name):
    with pytest.raises(UndecodableImage) as caught:
        read_header(io.BytesIO(BAD[name]))
    assert BAD_FILE_REASONS[name] in str(caught.value)


@pytest.mark.parametrize("name", BAD_FILE_REASONS)
def test_open_image_refuses_bad_file_with_reason(name):
    with pytest.raises(UndecodableImage) as caught:
        open_image(BAD[name])
    assert BAD_FILE_REASONS[name] in str(caught.value)


@pytest.mark.parametrize("name", ODD_EXPECTED)
def test_read_header_identifies_odd_file(name):
    format, width, height = ODD_EXPECTED[name]
    header = read_header(io.BytesIO(ODD[name]))
    assert (header.format, header.width, header.height) == (format, width, height)
    assert header.content_type == headers.CONTENT_TYPES[format]


@pytest.mark.parametrize("name", ODD_EXPECTED)
def test_open_image_decodes_odd_file_to_rgb(name):
    image = open_image(ODD[name])
    assert image.mode == "RGB"
    assert image.size == ODD_EXPECTED[name][1:]


def test_it_trusts_bytes_not_the_filename():
    header = read_header(io.BytesIO(ODD["actually_jpeg.png"]))
    assert header.content_type == "image/jpeg"


def test_it_turns_exif_rotated_photo_upright():
    image = open_image(ODD["rotated_exif.jpg"])
    assert image.size == photo("chelsea").size
    assert mean_difference(image, photo("chelsea")) < 6


def test_it_takes_first_frame_of_animation():
    image = open_image(ODD["animated.gif"])
    negative = Image.fromarray(255 - np.asarray(photo("chelsea")))
    assert mean_difference(image, photo("chelsea")) < 10
    assert mean_difference(image, negative) > 60


def test_it_composites_alpha_on_white():
    image = pixels(open_image(ODD["rgba.png"]))
    original = pixels(photo("chelsea"))
    assert (image[:, :225] == 255).all()
    assert (image[:, 226:] == original[:, 226:]).all()


def test_it_paints_transparent_palette_entries_white():
    image = pixels(open_image(ODD["palette_transparent.png"]))
    assert (image[:100, :100] == 255).all()
    assert image[100:, 100:].mean() < 200


def test_it_scales_16_bit_grey_to_8_bit():
    image = pixels(open_image(ODD["grey16.png"]))[:, :, 0]
    expected = np.asarray(grey16(), dtype=np.int32) // 257
    assert image.std() > 20
    assert np.abs(image - expected).max() <= 1


def test_it_converts_cmyk_to_rgb():
    assert mean_difference(open_image(ODD["cmyk.jpg"]), photo("chelsea")) < 6


@pytest.mark.parametrize("kind", ["bytes", "file", "path", "pillow"])
def test_open_image_accepts_every_source(kind, tmp_path):
    content = photo_jpeg()
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    sources = {
        "bytes": content,
        "file": io.BytesIO(content),
        "path": str(path),
        "pillow": Image.open(io.BytesIO(content)),
    }
    assert open_image(sources[kind]).size == (451, 300)


def test_read_header_leaves_file_at_start():
    good = io.BytesIO(photo_jpeg())
    good.seek(100)
    read_header(good)
    assert good.tell() == 0
    bad = io.BytesIO(BAD["truncated.jpg"])
    bad.seek(100)
    with pytest.raises(UndecodableImage):
        read_header(bad)
    assert bad.tell() == 0


def test_it_refuses_bomb_without_decoding():
    started = time.perf_counter()
    for _ in range(20):
        with pytest.raises(UndecodableImage, match="too large"):
            open_image(BAD["bomb.png"])
    assert time.perf_counter() - started < 1


def test_it_refuses_truncated_even_if_someone_allowed_it(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(UndecodableImage, match="truncated"):
        open_image(BAD["truncated.jpg"])


def test_it_respects_pixel_setting(settings):
    settings.MAX_IMAGE_PIXELS = 100_000
    with pytest.raises(UndecodableImage) as caught:
        read_header(io.BytesIO(photo_jpeg()))
    assert str(caught.value) == (
        "The image is too large: 451×300 pixels (limit 100,000)."
    )


def test_it_turns_pillow_bomb_warning_into_refusal(monkeypatch):
    # 451×300 is between Pillow's limit and twice it, where Pillow only warns.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(UndecodableImage, match="135,300 pixels"):
        open_image(photo_jpeg())


def test_it_refuses_oversize_file(settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    content = oversize_file(10_000)
    assert len(content) == 10_001
    with pytest.raises(UndecodableImage, match="too large"):
        read_header(io.BytesIO(content))
    with pytest.raises(UndecodableImage, match="too large"):
        open_image(content)


@pytest.mark.parametrize(
    "error",
    [
        OSError("x"),
        SyntaxError("x"),
        ValueError("x"),
        struct.error("x"),
        EOFError(),
        IndexError(),
        KeyError("x"),
        ZeroDivisionError(),
    ],
)
def test_it_maps_any_pillow_error_to_readable_reason(error, monkeypatch):
    def failing_open(*args, **kwargs):
        raise error

    monkeypatch.setattr(headers.Image, "open", failing_open)
    with pytest.raises(UndecodableImage, match="truncated or corrupt"):
        open_image(photo_jpeg())


def test_thumbnail_keeps_aspect():
    thumbnail = Image.open(io.BytesIO(make_thumbnail(open_image(photo_jpeg("coffee")))))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (256, 171))
    small = Image.open(io.BytesIO(make_thumbnail(photo("astronaut"), size=100)))
    assert small.size == (100, 100)


def test_thumbnail_does_not_enlarge_small_image():
    tiny = open_image(photo_jpeg(max_side=64))
    assert Image.open(io.BytesIO(make_thumbnail(tiny))).size == (64, 43)


class Decoded(BaseException):
    """Not an Exception, so that no `except Exception` on the way can hide it."""


def refuse_to_decode(monkeypatch):
    """Make every Pillow plugin (pillow-heif's too) fail if anything loads pixels."""
    def load(image):
        raise Decoded(f"the pixels of a {image.format} were decoded")

    plugins = {factory for factory, _ in Image.OPEN.values() if isinstance(factory, type)}
    for cls in {ImageFile.ImageFile, *plugins}:
        if "load" in vars(cls):
            monkeypatch.setattr(cls, "load", load)


@pytest.mark.parametrize("name", [*ODD_EXPECTED, *decode_bombs()])
def test_read_header_decodes_no_pixels_in_any_format(name, monkeypatch, settings):
    settings.MAX_PIXELS_PER_BYTE = 0
    data = {**ODD, **decode_bombs()}[name]
    refuse_to_decode(monkeypatch)
    header = read_header(io.BytesIO(data))
    assert header.width * header.height > 0


@pytest.mark.parametrize("before_the_pixels", [True, False], ids=["eXIf first", "eXIf last"])
def test_a_pngs_exif_orientation_is_found_without_decoding(before_the_pixels, monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 6
    chunk = png_chunk(b"eXIf", exif.tobytes())
    png = encode(photo("chelsea"), "PNG")
    end = png.index(b"IEND") - 4
    data = png[:33] + chunk + png[33:] if before_the_pixels else png[:end] + chunk + png[end:]
    refuse_to_decode(monkeypatch)
    header = read_header(io.BytesIO(data))
    assert (header.width, header.height) == (300, 451)


def test_a_large_picture_in_a_tiny_file_is_refused_for_its_pixels_per_byte(settings):
    data = flat_png(8000, 5000)
    with pytest.raises(UndecodableImage) as caught:
        read_header(io.BytesIO(data))
    assert caught.value.code == "too_many_pixels"
    assert str(caught.value) == (f"The image is 8000×5000 pixels in only {len(data):,} bytes (limit 200 pixels "
                                 "per byte): a photo never compresses that well. Send it smaller, or as a JPEG.")
    with pytest.raises(UndecodableImage, match="pixels per byte"):
        open_image(data)
    settings.MAX_PIXELS_PER_BYTE = 0
    assert read_header(io.BytesIO(data)).width == 8000


def test_a_small_picture_may_compress_as_well_as_it_likes():
    data = flat_png(2000, 2000)
    assert 2000 * 2000 > 200 * len(data)
    assert read_header(io.BytesIO(data)).width == 2000


def transparent_palette(size):
    image = palette_with_hole().resize(size, Image.Resampling.NEAREST)
    image.info["transparency"] = 255
    return image


# name -> a picture in a mode that needs converting, big enough to be reduced 3 times at min_side=100.
MODES = {
    "palette with transparency": lambda: transparent_palette((451 * 3 // 2, 300 * 3 // 2)),
    "RGBA": lambda: rgba_half_transparent().resize((677, 450)),
    "grey and alpha": lambda: rgba_half_transparent().resize((677, 450)).convert("LA"),
    "16-bit grey": lambda: grey16().resize((677, 450)),
    "1-bit": lambda: photo("coffee").convert("1"),
    "RGB with a transparent colour": lambda: rgb_with_transparent_black(),
}


def rgb_with_transparent_black():
    image = photo("coffee").copy()
    image.paste((0, 0, 0), (0, 0, 200, 150))
    image.info["transparency"] = (0, 0, 0)
    return image


@pytest.mark.parametrize("mode", MODES)
def test_the_reduced_decode_equals_the_full_decode_reduced(mode, monkeypatch):
    """Converting a strip at a time, then reducing, gives the very pixels of converting the whole
    picture and reducing it: only the memory differs."""
    data = encode(MODES[mode](), "PNG")
    monkeypatch.setattr(decoding, "STRIP_PIXELS", 20_000)  # several strips, the last one short
    reduced = open_image(data, min_side=100)
    reference = decoding.to_rgb(Image.open(io.BytesIO(data)))
    factor = min(reference.size) // 100
    assert factor >= 3 and reduced.info["full_size"] == reference.size
    assert np.array_equal(np.asarray(reduced), np.asarray(reference.reduce(factor)))
    assert np.asarray(reduced).min() < 100  # not all painted white


def test_the_reduced_decode_turns_the_picture_upright():
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = photo("coffee").transpose(Image.Transpose.ROTATE_90).convert("RGBA")
    reduced = open_image(encode(stored, "PNG", exif=exif.tobytes()), min_side=100)
    assert reduced.info["full_size"] == (600, 400) and reduced.size == (150, 100)
    assert mean_difference(reduced, photo("coffee").reduce(4)) < 3


def test_heic_and_avif_are_read_by_pillow_heif_and_pillow():
    assert read_header(io.BytesIO(ODD["photo.heic"])).content_type == "image/heif"
    assert read_header(io.BytesIO(ODD["photo.avif"])).content_type == "image/avif"


def test_without_pillow_heif_a_heic_is_refused_in_words(monkeypatch):
    monkeypatch.setattr(headers, "pillow_heif", None)
    monkeypatch.setattr(headers, "AVIF_SUPPORTED", False)
    for name, format in (("photo.heic", "HEIC"), ("photo.avif", "AVIF")):
        with pytest.raises(UndecodableImage) as caught:
            read_header(io.BytesIO(ODD[name]))
        assert (caught.value.code, str(caught.value)) == (
            "unsupported", f"{format} is not supported on this server; upload JPEG, PNG, GIF, WebP, BMP or TIFF.")
