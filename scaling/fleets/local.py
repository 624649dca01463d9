"""Local fleet: each node is a Celery worker process on this machine.

A state file maps node names to process ids, so a restarted autoscaler adopts the
workers that are still running instead of orphaning them.
"""
import json
import os
import secrets
import signal
import sys
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from imgsite.processes import start_process
from scaling.fleets.nodes import Node, worker_rows, worker_state
from scaling.models import WorkerNode


def worker_argv(node, pool="threads"):
    """One worker process per node, the model loaded once, running WORKER_CONCURRENCY (2) tasks in threads: while
    one task's images are in the model (one call at a time), the other's are fetched, decoded
    or stored, so the model does not wait for a group's first images or the previous group's
    database writes. (`pool="prefork"` runs one pool process instead, as a worker machine does.)"""
    concurrency = settings.WORKER_CONCURRENCY if pool == "threads" else 1
    return [
        sys.executable, "-m", "celery", "-A", "imgsite", "worker",
        f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO",
        "-Q", settings.CLASSIFY_QUEUE, "-n", f"{node}@%h",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]


def start_worker(node, env=None, log_path=None, pool="threads"):
    """A worker process as a worker machine runs one: without DEBUG (which keeps every query in
    memory), with a signing key of its own rather than the web tier's, and glibc's malloc kept to
    two arenas (one per pool thread would hold freed image buffers)."""
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "MALLOC_ARENA_MAX": "2",
           **(env or {}), "WORKER_NODE": node}
    return start_process(worker_argv(node, pool), env=env, log_path=log_path)


def inference_threads(max_nodes):
    """Workers share this machine: inference threads × worker processes ≤ cores."""
    if settings.CLASSIFIER_THREADS:
        return settings.CLASSIFIER_THREADS
    return max(1, (os.cpu_count() or 1) // max(1, max_nodes or settings.AUTOSCALE_MAX_NODES))


def process_alive(pid):
    """True while the process exists and is not a zombie; reaps it if it is our child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class LocalFleet:
    def __init__(self, state_file=None, env=None, max_nodes=None):
        self.state_file = state_file or settings.VAR_DIR / "local-fleet.json"
        self.env = {"CLASSIFIER_THREADS": str(inference_threads(max_nodes)), **(env or {})}
        self.logs = settings.VAR_DIR / "logs"

    def load(self):
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def save(self, nodes):
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(nodes, indent=1))
        tmp.replace(self.state_file)

    def list(self):
        recorded = self.load()
        nodes = {name: info for name, info in recorded.items() if process_alive(info["pid"])}
        if len(nodes) < len(recorded):
            self.save(nodes)
        rows = worker_rows(nodes)
        return [self.describe(name, info, rows) for name, info in sorted(nodes.items())]

    def describe(self, name, info, rows):
        since = info.get("draining_since")
        since = datetime.fromisoformat(since) if since else None
        return Node(name, worker_state(name, rows, since), datetime.fromisoformat(info["launched_at"]), since)

    def launch(self, count):
        nodes = self.load()
        names = []
        number = max([int(name.rsplit("-", 1)[1]) for name in nodes] + [0])
        for _ in range(count):
            number += 1
            name = f"local-{number}"
            WorkerNode.objects.filter(name=name).delete()
            self.logs.mkdir(parents=True, exist_ok=True)
            process = start_worker(name, env=self.env, log_path=self.logs / f"{name}.log")
            nodes[name] = {"pid": process.pid, "launched_at": timezone.now().isoformat()}
            names.append(name)
        self.save(nodes)
        return names

    def retire(self, node_ids):
        """SIGTERM: Celery's warm shutdown finishes the current task, then exits.
        A node still there after the drain timeout is killed; SQS redelivers its task."""
        nodes = self.load()
        now = timezone.now()
        drain_timeout = timedelta(seconds=settings.AUTOSCALE_DRAIN_TIMEOUT)
        retired = []
        for name in node_ids:
            info = nodes.get(name)
            if info is None:
                continue
            if "draining_since" not in info:
                info["draining_since"] = now.isoformat()
                self.signal(info["pid"], signal.SIGTERM)
            elif now - datetime.fromisoformat(info["draining_since"]) > drain_timeout:
                self.signal(info["pid"], signal.SIGKILL)
            retired.append(name)
        self.save(nodes)
        return retired

    @staticmethod
    def signal(pid, signum):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass
