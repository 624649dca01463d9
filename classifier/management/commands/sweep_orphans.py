"""Delete objects in the bucket that no image owns: `manage.py sweep_orphans [--dry-run] [--pages N]`."""
from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.orphans import sweep_orphans


class Command(BaseCommand):
    help = ("Delete the objects under images/ that no image row owns and that are older than "
            "ORPHAN_GRACE_SECONDS, listing the bucket page by page (1,000 names a page).")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be deleted; delete nothing.")
        parser.add_argument("--pages", type=int, default=None, help="Stop after this many pages (default: all).")
        parser.add_argument("--start-after", default="", help="Resume the listing after this object name.")
        parser.add_argument("--grace", type=int, default=settings.ORPHAN_GRACE_SECONDS,
                            help=f"Seconds an object must be old (default: {settings.ORPHAN_GRACE_SECONDS}).")

    def handle(self, *args, dry_run, pages, start_after, grace, **options):
        report = sweep_orphans(pages=pages, start_after=start_after, grace=grace, dry_run=dry_run)
        for name in report.deleted:
            self.stdout.write(f"{'would delete' if dry_run else 'deleted'} {name}")
        verb = "found" if dry_run else "deleted"
        summary = f"listed {report.listed} object(s), {verb} {len(report.deleted)} orphan(s)"
        if report.start_after:
            summary += f"; resume with --start-after {report.start_after}"
        self.stdout.write(summary)
