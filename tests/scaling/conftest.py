"""Helpers shared by the EC2 and Auto Scaling fleet tests (moto's in-process EC2, the WorkerNode table)."""
from scaling.models import WorkerNode


def describe(ec2, node_id):
    return ec2.describe_instances(InstanceIds=[node_id])["Reservations"][0]["Instances"][0]


def ec2_state(ec2, node_id):
    return describe(ec2, node_id)["State"]["Name"]


def start_worker(node_id, busy=False, at=None):
    """What a node's worker reports: started, optionally busy with one task, last heard of `at`."""
    WorkerNode.report_started(node_id)
    if busy:
        WorkerNode.report_task(node_id, "task-1", 1)
    if at:
        WorkerNode.objects.filter(name=node_id).update(last_heartbeat=at)
