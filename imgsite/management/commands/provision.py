from django.core.management.base import BaseCommand

from imgsite.provision import provision


class Command(BaseCommand):
    help = "Create the S3 bucket, the SQS queue and its dead-letter queue from settings (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print the plan; change nothing.")

    def handle(self, *args, dry_run=False, **options):
        changes = provision(dry_run=dry_run)
        prefix = "would " if dry_run else ""
        for change in changes:
            self.stdout.write(f"{prefix}{change}")
        if not changes:
            self.stdout.write("no changes: everything is provisioned")
