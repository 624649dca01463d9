from django.core.management.base import BaseCommand

from classifier.sweeper import sweep


class Command(BaseCommand):
    help = ("Fail images whose messages were dead-lettered, send lost images again, and send what waits in the "
            "outbox (the autoscaler does this on every tick).")

    def handle(self, *args, **options):
        report = sweep()
        self.stdout.write(f"dead-lettered images failed: {report.dead_lettered}, lost images sent again: "
                          f"{report.resent}, messages sent from the outbox: {report.dispatched}, "
                          f"orphaned objects deleted: {report.orphans}")
