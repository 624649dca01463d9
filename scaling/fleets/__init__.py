"""Fleet backends. Each offers list(), launch(n) and retire(node_ids), and nothing more.

Retiring is always graceful: a node is first asked to drain (finish its task, then stop),
and only a drained node, or one that hangs past the drain timeout, is terminated.
"""
from scaling.fleets.asg import AsgFleet
from scaling.fleets.ec2 import Ec2Fleet
from scaling.fleets.local import LocalFleet
from scaling.fleets.nodes import BOOTING, DRAINING, RUNNING, Node, worker_rows, worker_state

__all__ = ["BOOTING", "DRAINING", "RUNNING", "Node", "worker_rows", "worker_state", "get_fleet"]


def get_fleet(backend, max_nodes=None):
    """The backend named in settings or on the command line. The asg backend caps the group's
    desired capacity at `max_nodes`; the local one shares the cores among that many workers."""
    if backend == "local":
        return LocalFleet(max_nodes=max_nodes)
    if backend == "ec2":
        return Ec2Fleet()
    if backend == "asg":
        return AsgFleet(max_nodes=max_nodes)
    raise ValueError(f"unknown fleet backend {backend!r}: use local, ec2 or asg")
