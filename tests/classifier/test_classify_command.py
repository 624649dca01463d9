"""manage.py classify: one line per file, good and bad files mixed."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from PIL import ImageOps

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def run_classify(*args):
    """(stdout lines, CommandError or None)."""
    out = StringIO()
    try:
        call_command("classify", *map(str, args), stdout=out)
    except CommandError as exc:
        return out.getvalue().splitlines(), exc
    return out.getvalue().splitlines(), None


@pytest.fixture
def files(tmp_path, photo_files):
    paths = {}
    for name, data in [*photo_files.items(), ("bad", b"%PDF-1.7 not a photo")]:
        paths[name] = tmp_path / f"{name}.jpg"
        paths[name].write_bytes(data)
    return paths


def test_it_prints_json_per_file_and_fails_only_the_bad_ones(configured_classifier, files):
    lines, error = run_classify(files["chelsea"], files["bad"], files["coffee"], files["chelsea"].with_name("no.jpg"),
                                "--json", "--top", "3")
    assert "2 of 4 files could not be classified" in str(error)
    cat, bad, coffee, missing = map(json.loads, lines)
    assert cat["name"] == str(files["chelsea"]) and len(cat["predictions"]) == 3
    assert set(cat["predictions"][0]) == {"rank", "index", "wnid", "label", "score"}
    assert cat["predictions"][0]["index"] in CATS and coffee["predictions"][0]["index"] in COFFEE
    reason = "PDF is not supported; upload JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP or TIFF."
    assert bad == {"name": str(files["bad"]), "error_code": "unsupported", "error": reason}
    assert (missing["error_code"], missing["error"]) == ("missing", "No such file.")


def test_it_prints_a_readable_line_per_file(configured_classifier, files):
    lines, error = run_classify(files["coffee"])
    assert error is None
    assert lines == [lines[0]] and lines[0].startswith(f"{files['coffee']}: espresso ")


def test_it_classifies_64_photos(configured_classifier, photos, tmp_path):
    paths = []
    for number in range(64):
        image = list(photos.values())[number % 3].rotate(number * 5, expand=False)
        image = ImageOps.mirror(image) if number % 2 else image
        paths.append(tmp_path / f"photo{number:02d}.jpg")
        image.save(paths[-1], quality=85)
    lines, error = run_classify(*paths, "--json")
    assert error is None
    results = [json.loads(line) for line in lines]
    assert [result["name"] for result in results] == list(map(str, paths))
    assert all(len(result["predictions"]) == 5 for result in results)
    assert results[0]["predictions"][0]["index"] in CATS


def test_top_must_be_positive(files):
    with pytest.raises(CommandError, match="--top must be at least 1"):
        call_command("classify", str(files["chelsea"]), "--top", "0")
