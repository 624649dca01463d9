"""Write the int8 calibration photos to classifier/calibration/ (committed; rerun only to change them).

    .venv/bin/python bench/make_calibration.py

Needs the dev venv (scikit-image and matplotlib ship the source photos); the workers build their
int8 model from the committed JPEGs, so they need neither. Each source photo gives its centre
and two seeded random crops, flipped at random, at 256x256 (the model sees the centre 224/256).
The photos that the tests classify (chelsea, coffee, astronaut, rocket) are left out, so the
tests and bench/int8.py can tell agreement on photos the ranges were measured on from the rest.
"""
import random
from pathlib import Path

from PIL import Image, ImageOps

OUTPUT = Path(__file__).resolve().parents[1] / "classifier" / "calibration"
SIZE = 256
CROPS_PER_PHOTO = 2
SEED = 17
# scikit-image sample photos, with the licence their docstrings state.
SKIMAGE_PHOTOS = {
    "hubble_deep_field": "NASA, public domain",
    "retina": "public domain dedication",
    "immunohistochemistry": "no known copyright restrictions",
    "camera": "CC0 (Lav Varshney)",
    "coins": "no known copyright restrictions (Brooklyn Museum)",
    "grass": "CC0",
    "gravel": "CC0",
    "brick": "CC0",
    "cell": "CC0",
    "clock": "public domain (Stefan van der Walt)",
}


def sources():
    """Name -> RGB PIL image of every source photo."""
    import matplotlib.cbook
    from skimage import data

    photos = {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in SKIMAGE_PHOTOS}
    # matplotlib's sample photo of Grace Hopper (a US Navy photograph, public domain).
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as hopper:
        photos["grace_hopper"] = hopper.convert("RGB")
    return photos


def square(image, box):
    return image.crop(box).resize((SIZE, SIZE), Image.Resampling.BICUBIC)


def crops(image, rng):
    """The centre square, then seeded random squares of 40-100 % of the short side."""
    width, height = image.size
    side = min(width, height)
    yield square(image, ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2))
    for _ in range(CROPS_PER_PHOTO):
        crop = int(side * rng.uniform(0.4, 1.0))
        left, top = rng.randint(0, width - crop), rng.randint(0, height - crop)
        picture = square(image, (left, top, left + crop, top + crop))
        yield ImageOps.mirror(picture) if rng.random() < 0.5 else picture


def main():
    rng = random.Random(SEED)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("*.jpg"):
        old.unlink()
    total = 0
    for name, image in sources().items():
        for number, picture in enumerate(crops(image, rng)):
            path = OUTPUT / f"{name}-{number}.jpg"
            picture.save(path, "JPEG", quality=85)
            total += path.stat().st_size
    print(f"wrote {len(list(OUTPUT.glob('*.jpg')))} photos, {total:,} bytes, to {OUTPUT}")


if __name__ == "__main__":
    main()
