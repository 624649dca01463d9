"""Worker side of scaling: report liveness on the node's WorkerNode row, and drain when asked.

SQS offers no remote control, so the autoscaler learns which nodes are alive from here, and
asks a node to drain by setting WorkerNode.draining, which the heartbeat picks up. Which nodes
are busy it learns from the images' leases (scaling.workload.busy_nodes), which expire.
"""
import logging
import os
import signal
import threading

from celery import signals
from django.conf import settings
from django.db import close_old_connections

from imgsite.node import node_name

log = logging.getLogger(__name__)


def report(method, *args):
    from scaling.models import WorkerNode

    try:
        close_old_connections()
        return getattr(WorkerNode, method)(node_name(), *args)
    except Exception:  # a missed heartbeat must never break a task
        log.exception("could not record %s for %s", method, node_name())


def beat_until_drained(stop):
    while not stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
        if report("heartbeat"):
            log.info("node %s asked to drain: warm shutdown", node_name())
            os.kill(os.getpid(), signal.SIGTERM)  # Celery finishes the current task, then exits
            return


@signals.worker_ready.connect
def start_heartbeat(**kwargs):
    report("report_started")
    stop = threading.Event()
    threading.Thread(target=beat_until_drained, args=(stop,), daemon=True, name="heartbeat").start()

    def stop_heartbeat(**kw):
        stop.set()
        report("report_stopped")

    signals.worker_shutdown.connect(stop_heartbeat, weak=False)
