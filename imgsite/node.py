"""Who this process is: the worker node (an EC2 instance id, or local-N) and the process on it."""
import os
import socket


def node_name():
    """The node id from the fleet that launched this machine, else the host name."""
    return os.environ.get("WORKER_NODE") or socket.gethostname()


def worker_name():
    """The node and the process, e.g. 'local-3:12345': what claims an image. Not cached: a
    prefork child must not inherit its parent's pid."""
    return f"{node_name()}:{os.getpid()}"
