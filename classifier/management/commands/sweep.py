from django.core.management.base import BaseCommand

from classifier.sweeper import sweep


class Command(BaseCommand):
    help = "Fail images whose messages were dead-lettered; re-queue (once) or fail images that lost theirs."

    def handle(self, *args, **options):
        report = sweep()
        self.stdout.write(f"dead-lettered images failed: {report.dead_lettered}, "
                          f"re-queued: {report.requeued}, stalled and failed: {report.failed}")
