"""Classify image files from the command line, through the worker's pipeline."""
import json

from django.core.management.base import BaseCommand, CommandError

from classifier.pipeline import classify_files
from classifier.progress import Progress


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
        # On a terminal, a progress line on stderr; quiet when piped, and with --json.
        progress = Progress(self.stderr, len(files), enabled=not options["json"])
        try:
            for result in classify_files(files, top_k=top):
                progress.above(self.stdout)
                self.stdout.write(as_line(result))
                failed += not result.ok
                progress.advance(failed=not result.ok)
        finally:
            progress.close()
        if failed:
            raise CommandError(f"{failed} of {len(files)} files could not be classified")


def as_json(result):
    """The API's field names: name, predictions (rank, label, index, wnid, score), error_code, error."""
    if not result.ok:
        return json.dumps({"name": result.source, "error_code": result.code, "error": result.error})
    predictions = [{"rank": rank, "label": label.label, "index": label.index, "wnid": label.wnid, "score": label.score}
                   for rank, label in enumerate(result.labels, start=1)]
    return json.dumps({"name": result.source, "predictions": predictions})


def as_text(result):
    if not result.ok:
        return f"{result.source}: ERROR {result.error}"
    return f"{result.source}: " + ", ".join(f"{label.label} {label.score:.1%}" for label in result.labels)
