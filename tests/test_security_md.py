"""SECURITY.md claims only what a test proves: every row of its claims tables names at least one
test, as `file::test`, and each named test exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def claim_rows():
    text = (ROOT / "SECURITY.md").read_text()
    section = text.split("## What we claim", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith(("| claim |", "|---"))]


def test_every_claim_names_a_test_that_exists():
    rows = claim_rows()
    assert len(rows) > 40
    unproven = [row for row in rows if not TEST.search(row.rsplit("|", 2)[-2])]
    missing = [f"{path}::{name}" for row in rows for path, name in TEST.findall(row)
               if not (ROOT / path).exists() or f"def {name}(" not in (ROOT / path).read_text()]
    assert unproven == [] and missing == []
