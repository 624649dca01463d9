"""manage.py fleet: the queue and the worker fleet as the autoscaler sees them.

SQS has no remote control, so `celery inspect` and Flower cannot see the workers; their
heartbeats in the database can. The numbers are the admin worker-nodes page's (scaling/overview.py).
"""
import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from scaling.overview import fleet_overview, overview_json


class Command(BaseCommand):
    help = "Show the queue, the worker nodes (state, tasks, heartbeat age) and the autoscaler's recent decisions."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--events", type=int, default=10, help="how many recent decisions (default 10)")

    def handle(self, *args, events, **options):
        overview = fleet_overview(timezone.now(), events=events)
        if options["json"]:
            self.stdout.write(json.dumps(overview_json(overview)))
            return
        for line in as_text(overview):
            self.stdout.write(line)


def number(value, fmt="{}"):
    return "—" if value is None else fmt.format(value)


def as_text(overview):
    depth = overview["depth"] or {}
    yield (f"Queue (images): {number(depth.get('visible'))} visible, {number(depth.get('in_flight'))} in flight, "
           f"{number(depth.get('delayed'))} delayed, {overview['outbox']} in the outbox; "
           f"{overview['open_images']} open")
    if overview["error"]:
        yield overview["error"]
    yield (f"Workers: {overview['alive']} alive, {overview['busy']} busy; "
           f"{number(overview['seconds_per_image'], '{:.2f}')} s per image lately")
    yield ""
    yield f"{'NODE':<24} {'STATE':<9} {'TASKS':>5} {'HEARTBEAT':>10}"
    for node in overview["nodes"]:
        yield f"{node['name']:<24} {node['state']:<9} {node['running_tasks']:>5} {node['heartbeat_age']:>8.1f} s"
    if not overview["nodes"]:
        yield "(no worker has reported)"
    yield ""
    yield f"{'DECIDED AT':<19} {'BACKEND':<7} {'QUEUE':>9} {'B/R/D':>8} {'TARGET':>6}  ACTION; REASON"
    for event in overview["events"]:
        queue = f"{event.visible}+{event.in_flight}"
        nodes = f"{event.booting}/{event.running}/{event.draining}"
        action = f"{event.action or '—'}{' (dry run)' if event.dry_run else ''}"
        error = f"  ERROR {event.error.splitlines()[-1][:80]}" if event.error else ""
        yield (f"{event.created_at:%Y-%m-%d %H:%M:%S} {event.backend:<7} {queue:>9} {nodes:>8} {event.target:>6}  "
               f"{action}; {event.reason}{error}")
    if not overview["events"]:
        yield "(no decisions yet: is `manage.py autoscale` running?)"
