"""manage.py autoscale: grow and shrink the worker fleet from the queue's depth."""
import logging
import signal
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

from classifier.sweeper import sweep
from scaling.autoscaler import history_from_events, policy_settings, run_pass
from scaling.fleets import get_fleet
from scaling.monitoring import report_pass

log = logging.getLogger("scaling.autoscale")


class Command(BaseCommand):
    help = "Scale the worker fleet on queue depth (observe → decide → act), every --interval seconds."

    def add_arguments(self, parser):
        parser.add_argument("--backend", choices=["local", "ec2", "asg"], default=settings.AUTOSCALE_BACKEND)
        parser.add_argument("--min", type=int, default=settings.AUTOSCALE_MIN_NODES, dest="min_nodes")
        parser.add_argument("--max", type=int, default=settings.AUTOSCALE_MAX_NODES, dest="max_nodes")
        parser.add_argument("--interval", type=float, default=settings.AUTOSCALE_INTERVAL)
        parser.add_argument("--once", action="store_true", help="Make one pass and exit.")
        parser.add_argument("--dry-run", action="store_true", help="Decide and log, but change nothing.")
        parser.add_argument("--retire-on-exit", action="store_true",
                            help="Drain and stop every node on exit (the local run uses this).")

    def handle(self, *args, backend, min_nodes, max_nodes, interval, once, dry_run, retire_on_exit, **options):
        self.stopping = False
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        fleet = get_fleet(backend, max_nodes)
        policy = policy_settings(min_nodes, max_nodes)
        window = timedelta(seconds=policy.memory_seconds)
        history = history_from_events(timezone.now(), window)
        failures = 0
        while not self.stopping:
            close_old_connections()
            try:
                history = run_pass(fleet, backend, history, policy, timezone.now(), dry_run)
                if not dry_run:
                    sweep()
                failures = 0
            except Exception:
                failures += 1
                log.exception("autoscaler pass failed (%d in a row); trying again", failures)
            report_pass(backend, ok=not failures, interval=interval)  # CloudWatch, Sentry check-in (#19)
            if once:
                break
            self.sleep(min(interval * 2 ** min(failures, 4), 300))
        if retire_on_exit and not dry_run:
            self.retire_all(fleet)

    def request_stop(self, signum, frame):
        self.stopping = True

    def sleep(self, seconds):
        """Sleep in one-second slices, so a signal ends the loop promptly."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(1.0, deadline - time.monotonic()))

    def retire_all(self, fleet, timeout=None):
        """Ask every node to drain and wait for them to finish their tasks."""
        # A little past the drain timeout, so the last retire() finds every hung node overdue.
        deadline = time.monotonic() + (timeout or settings.AUTOSCALE_DRAIN_TIMEOUT) + 5
        while time.monotonic() < deadline:
            nodes = fleet.list()
            if not nodes:
                return
            fleet.retire([node.id for node in nodes])
            time.sleep(0.5)
        fleet.retire([node.id for node in fleet.list()])  # past the drain timeout: stop them anyway
        log.warning("nodes still draining after the timeout: %s", [node.id for node in fleet.list()])
