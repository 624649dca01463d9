"""The autoscaler, its fleets (local, ec2, asg) and the worker nodes it counts."""
from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.env import envbool, envfloat, envint, envstr
from imgsite.settings.tasks import TASK_TIME_LIMIT

# --- The autoscaler and its fleets. ---
AUTOSCALE_BACKEND = envstr("AUTOSCALE_BACKEND", "local")
if AUTOSCALE_BACKEND not in ("local", "ec2", "asg"):
    raise ImproperlyConfigured(f"AUTOSCALE_BACKEND={AUTOSCALE_BACKEND!r} must be local, ec2 or asg")
AUTOSCALE_MIN_NODES = envint("AUTOSCALE_MIN_NODES", 0)
# 2 suits one machine (the local backend); a production fleet uses e.g. 30 (see docs/deploy.md).
AUTOSCALE_MAX_NODES = envint("AUTOSCALE_MAX_NODES", 2)
# The autoscaler's model of the fleet (scaling/policy.py; README, "The autoscaler").
AUTOSCALE_INTERVAL = envfloat("AUTOSCALE_INTERVAL", 15)  # between passes while nothing moves
AUTOSCALE_BUSY_INTERVAL = envfloat("AUTOSCALE_BUSY_INTERVAL", 5)  # while nodes boot, work or drain
AUTOSCALE_BOOT_SECONDS = envfloat("AUTOSCALE_BOOT_SECONDS", 70)  # launch → worker taking messages
AUTOSCALE_SECONDS_PER_IMAGE = envfloat("AUTOSCALE_SECONDS_PER_IMAGE", 0.5)  # until measured
# Extra wait a message may have beyond what a node launched now could give it, before one is.
AUTOSCALE_ACCEPTABLE_LATENCY = envfloat("AUTOSCALE_ACCEPTABLE_LATENCY", 0)
AUTOSCALE_MAX_STEP = envint("AUTOSCALE_MAX_STEP", 30)  # most launches per pass
AUTOSCALE_MAX_RETIRE_STEP = envint("AUTOSCALE_MAX_RETIRE_STEP", 10)  # most retirements per pass
AUTOSCALE_SURGE = envint("AUTOSCALE_SURGE", 0)  # booting + running + draining ≤ max + surge
AUTOSCALE_RATE_WINDOW = envfloat("AUTOSCALE_RATE_WINDOW", 600)  # arrivals for the Little's-law floor


def optional_seconds(name):
    """A number of seconds, or None (derived from the boot time and interval) when unset."""
    return envfloat(name, 0) if envstr(name) else None


AUTOSCALE_IDLE_HOLD_SECONDS = optional_seconds("AUTOSCALE_IDLE_HOLD_SECONDS")
AUTOSCALE_RECURRENCE_SECONDS = optional_seconds("AUTOSCALE_RECURRENCE_SECONDS")
# One autoscaler at a time: a copy holds a lease row this long, renewed on every pass.
AUTOSCALE_LEASE_SECONDS = envfloat("AUTOSCALE_LEASE_SECONDS", 120)
# Tasks a worker runs at once (its Celery concurrency): the messages a node takes at a time.
WORKER_CONCURRENCY = envint("WORKER_CONCURRENCY", 2)
# Threads per worker process for S3 round trips (reading originals, storing thumbnails); decoding
# has one a core. More cost memory (about 12 MB each, bench/README.md) and gain little.
WORKER_IO_THREADS = envint("WORKER_IO_THREADS", 4)
# A node that is still busy this long after it was asked to drain is retired anyway;
# SQS then redelivers its task.
AUTOSCALE_DRAIN_TIMEOUT = envfloat("AUTOSCALE_DRAIN_TIMEOUT", TASK_TIME_LIMIT + 30)
if not 0 <= AUTOSCALE_MIN_NODES <= AUTOSCALE_MAX_NODES:
    raise ImproperlyConfigured("AUTOSCALE_MIN_NODES must be between 0 and AUTOSCALE_MAX_NODES")
if min(AUTOSCALE_MAX_STEP, AUTOSCALE_MAX_RETIRE_STEP, WORKER_CONCURRENCY, WORKER_IO_THREADS) < 1:
    raise ImproperlyConfigured("AUTOSCALE_MAX_STEP, AUTOSCALE_MAX_RETIRE_STEP, WORKER_CONCURRENCY and "
                               "WORKER_IO_THREADS must be at least 1")
if min(AUTOSCALE_INTERVAL, AUTOSCALE_BUSY_INTERVAL, AUTOSCALE_BOOT_SECONDS, AUTOSCALE_RATE_WINDOW) <= 0:
    raise ImproperlyConfigured("AUTOSCALE_INTERVAL, AUTOSCALE_BUSY_INTERVAL, AUTOSCALE_BOOT_SECONDS and "
                               "AUTOSCALE_RATE_WINDOW must be positive")
if AUTOSCALE_ACCEPTABLE_LATENCY < 0 or AUTOSCALE_SURGE < 0:
    raise ImproperlyConfigured("AUTOSCALE_ACCEPTABLE_LATENCY and AUTOSCALE_SURGE cannot be negative")
if AUTOSCALE_LEASE_SECONDS <= AUTOSCALE_INTERVAL:
    raise ImproperlyConfigured("AUTOSCALE_LEASE_SECONDS must be longer than AUTOSCALE_INTERVAL, or a "
                               "second autoscaler takes over between two passes")
WORKER_HEARTBEAT_SECONDS = envfloat("WORKER_HEARTBEAT_SECONDS", 5)
WORKER_STALE_SECONDS = envfloat("WORKER_STALE_SECONDS", 60)
# Names the workers' instances, role and launch template; the autoscaler terminates what carries
# it, so two deployments must never share it by default.
FLEET_NAME = envstr("FLEET_NAME", "imgsite-workers" if AUTOSCALE_BACKEND == "local" else "")
if not FLEET_NAME:
    raise ImproperlyConfigured(f"FLEET_NAME must be set with AUTOSCALE_BACKEND={AUTOSCALE_BACKEND} "
                               "(it names this deployment's worker instances)")
EC2_LAUNCH_TEMPLATE = envstr("EC2_LAUNCH_TEMPLATE")
EC2_AMI_ID = envstr("EC2_AMI_ID")
EC2_INSTANCE_TYPE = envstr("EC2_INSTANCE_TYPE", "c7i.large")
EC2_INSTANCE_PROFILE = envstr("EC2_INSTANCE_PROFILE")
EC2_SUBNET_ID = envstr("EC2_SUBNET_ID")
EC2_SECURITY_GROUP_IDS = [g for g in envstr("EC2_SECURITY_GROUP_IDS").split(",") if g]
EC2_USER_DATA_FILE = envstr("EC2_USER_DATA_FILE")
ASG_NAME = envstr("ASG_NAME", "imgsite-workers")
# The asg backend can also publish backlog per instance to CloudWatch after each pass, for an
# Auto Scaling target-tracking policy (docs/deploy.md, "Scaling with CloudWatch").
AUTOSCALE_CLOUDWATCH_METRIC = envbool("AUTOSCALE_CLOUDWATCH_METRIC", "False")
CLOUDWATCH_NAMESPACE = envstr("CLOUDWATCH_NAMESPACE", "imgsite")
if AUTOSCALE_CLOUDWATCH_METRIC and AUTOSCALE_BACKEND != "asg":
    raise ImproperlyConfigured("AUTOSCALE_CLOUDWATCH_METRIC needs AUTOSCALE_BACKEND=asg")
