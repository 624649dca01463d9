"""Classify image files from the command line with the configured model."""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.inference import MAX_BATCH, Result, chunks, classify_batch


class Command(BaseCommand):
    help = "Classify image files; one line per file. Exits non-zero if any file could not be classified."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--top", type=int, default=5, help="how many labels per file (default 5)")
        parser.add_argument("--json", action="store_true", help="print one JSON object per line")

    def handle(self, *args, files, top, **options):
        as_line = as_json if options["json"] else as_text
        if top < 1:
            raise CommandError("--top must be at least 1")
        failed = 0
        for chunk in chunks(files, MAX_BATCH):
            for name, result in zip(chunk, classify_files(chunk, top)):
                self.stdout.write(as_line(name, result))
                failed += not result.ok
        if failed:
            raise CommandError(f"{failed} of {len(files)} files could not be classified")


def classify_files(names, top):
    """classify_batch over paths, reporting missing files plainly rather than as undecodable."""
    exists = [Path(name).is_file() for name in names]
    results = iter(classify_batch([name for name, found in zip(names, exists) if found], top_k=top))
    return [next(results) if found else Result(error="No such file.") for found in exists]


def as_json(name, result):
    if not result.ok:
        return json.dumps({"file": name, "error": result.error})
    top = [{"index": x.index, "wnid": x.wnid, "label": x.label, "score": x.score} for x in result.labels]
    return json.dumps({"file": name, "top": top})


def as_text(name, result):
    if not result.ok:
        return f"{name}: ERROR {result.error}"
    return f"{name}: " + ", ".join(f"{x.label} {x.score:.1%}" for x in result.labels)
