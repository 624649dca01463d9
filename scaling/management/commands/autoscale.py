"""manage.py autoscale: grow and shrink the worker fleet from the queue's depth."""
import logging
import os
import signal
import socket
import time
import traceback

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.utils import timezone

from classifier.sweeper import sweep
from scaling.autoscaler import history_from_events, policy_settings, record_failure, run_pass
from scaling.fleets import get_fleet
from scaling.models import Lease
from scaling.monitoring import report_pass
from scaling.policy import Controller

log = logging.getLogger("scaling.autoscale")

LEASE = "autoscaler"


class Command(BaseCommand):
    help = ("Scale the worker fleet on queue depth (observe → decide → act): every --interval seconds, "
            "and every AUTOSCALE_BUSY_INTERVAL seconds while nodes boot, work or drain.")

    def add_arguments(self, parser):
        parser.add_argument("--backend", choices=["local", "ec2", "asg"], default=settings.AUTOSCALE_BACKEND)
        parser.add_argument("--min", type=int, default=settings.AUTOSCALE_MIN_NODES, dest="min_nodes")
        parser.add_argument("--max", type=int, default=settings.AUTOSCALE_MAX_NODES, dest="max_nodes")
        parser.add_argument("--interval", type=float, default=settings.AUTOSCALE_INTERVAL)
        parser.add_argument("--once", action="store_true", help="Make one pass and exit (non-zero if it failed).")
        parser.add_argument("--dry-run", action="store_true", help="Decide and log, but change nothing.")
        parser.add_argument("--retire-on-exit", action="store_true",
                            help="Drain and stop every node on exit (the local run uses this).")

    def handle(self, *args, backend, min_nodes, max_nodes, interval, once, dry_run, retire_on_exit, **options):
        if interval >= settings.AUTOSCALE_LEASE_SECONDS:
            raise CommandError(f"--interval {interval:g} must be shorter than AUTOSCALE_LEASE_SECONDS "
                               f"({settings.AUTOSCALE_LEASE_SECONDS:g}), or another copy takes over between passes")
        self.stopping = False
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.leased = self.waiting = False
        fleet = get_fleet(backend, max_nodes)
        policy = policy_settings(min_nodes, max_nodes, interval)
        started = timezone.now()
        controller = Controller(policy, history_from_events(started, policy))
        failures = 0
        try:
            while not self.stopping:
                close_old_connections()
                now = timezone.now()
                try:
                    if not dry_run and not self.claim(now, once):
                        self.sleep(interval)
                        continue
                    _, next_at = run_pass(fleet, backend, controller, now, dry_run, started, settings.AUTOSCALE_SURGE)
                    failures = 0
                    pause = (next_at - timezone.now()).total_seconds()
                except CommandError:
                    raise
                except Exception as exc:
                    failures += 1
                    log.exception("autoscaler pass failed (%d in a row); trying again", failures)
                    self.record_failure(backend, now, dry_run)
                    pause = min(interval * 2 ** min(failures, 4), 300)
                    if once:
                        self.sweep(dry_run)
                        report_pass(backend, ok=False, interval=interval)
                        raise CommandError(f"the autoscaler pass failed: {exc}") from exc
                self.sweep(dry_run)
                report_pass(backend, ok=not failures, interval=interval)  # CloudWatch, Sentry check-in
                if once:
                    break
                self.sleep(pause)
            if retire_on_exit and not dry_run and self.leased:
                self.retire_all(fleet)
        finally:
            if self.leased:
                Lease.release(LEASE, self.holder)

    def claim(self, now, once):
        """Take or renew the lease; another copy holding it makes this one wait (or, with --once, exit)."""
        held = Lease.claim(LEASE, self.holder, now, settings.AUTOSCALE_LEASE_SECONDS)
        if held is None:
            if not self.leased:
                log.info("autoscaler lease taken by %s", self.holder)
            self.leased = True
            return True
        message = (f"another autoscaler ({held.holder}) holds the lease until {held.expires_at:%H:%M:%S}; "
                   f"only one may scale the fleet")
        if once:
            raise CommandError(message)
        if self.leased or not self.waiting:
            log.warning("%s: waiting", message)
        self.leased, self.waiting = False, True
        return False

    @staticmethod
    def record_failure(backend, now, dry_run):
        """A failed pass is a ScalingEvent too, with its error, so the admin shows it."""
        try:
            record_failure(backend, now, traceback.format_exc(limit=3)[-4000:], dry_run)
        except Exception:  # the database itself may be what failed
            log.exception("could not record the failed pass")

    @staticmethod
    def sweep(dry_run):
        """The sweeper runs on every pass, even one whose SQS or fleet call failed."""
        if dry_run:
            return
        try:
            sweep()
        except Exception:
            log.exception("sweeper pass failed")

    def request_stop(self, signum, frame):
        self.stopping = True

    def sleep(self, seconds):
        """Sleep in one-second slices, so a signal ends the loop promptly."""
        deadline = time.monotonic() + max(0.0, seconds)
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
