"""Imported at start-up by a Python process with this directory on PYTHONPATH: records every
AWS call the process makes, one JSON line each, into the file $AWS_CALL_LOG."""
import json
import os

import botocore.client
import botocore.exceptions

LOG = os.environ["AWS_CALL_LOG"]
# What IAM decides on (tests/deploy/iam_requests.py); never a body, a value or a secret.
PARAMETERS = ("Bucket", "Key", "Prefix", "Delete", "QueueUrl", "QueueName", "Path", "Names", "InstanceIds",
              "Resources", "Tags", "TagSpecifications", "LaunchTemplate", "AutoScalingGroupName", "InstanceId",
              "Namespace", "InstanceTags", "Error")


def record(service, operation, parameters):
    entry = {"service": service, "operation": operation, **{k: parameters[k] for k in PARAMETERS if k in parameters}}
    if "Delete" in entry:
        entry["Delete"] = [item["Key"] for item in entry["Delete"]["Objects"]]
    with open(LOG, "a") as log:
        log.write(json.dumps(entry) + "\n")


make_api_call = botocore.client.BaseClient._make_api_call
ec2_clients = {}


def instance_tags(client, parameters):
    """{instance id: {key: value}} of the instances a call names, as they are before it: IAM decides
    on the tags an instance has then (Auto Scaling removes its group's tag once it lets one go)."""
    ids = parameters.get("InstanceIds") or parameters.get("Resources") or (
        [parameters["InstanceId"]] if "InstanceId" in parameters else [])
    if not ids:
        return {}
    key = (client.meta.region_name, client.meta.endpoint_url)
    if key not in ec2_clients:
        import boto3

        ec2_clients[key] = boto3.client("ec2", region_name=key[0], endpoint_url=key[1])
    answer = make_api_call(ec2_clients[key], "DescribeInstances", {"InstanceIds": ids})  # not recorded
    return {instance["InstanceId"]: {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
            for reservation in answer["Reservations"] for instance in reservation["Instances"]}


def recorded_api_call(self, operation, parameters):
    service = self.meta.service_model.service_name
    if operation in ("CreateTags", "TerminateInstances", "TerminateInstanceInAutoScalingGroup"):
        parameters_seen = {**parameters, "InstanceTags": instance_tags(self, parameters)}
    else:
        parameters_seen = parameters
    try:
        response = make_api_call(self, operation, parameters)
    except botocore.exceptions.ClientError as error:
        record(service, operation, {**parameters_seen, "Error": error.response["Error"]["Code"]})
        raise
    record(service, operation, parameters_seen)
    return response


botocore.client.BaseClient._make_api_call = recorded_api_call

try:  # kombu's asynchronous SQS client signs with botocore but sends with its own HTTP client
    from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection
except ImportError:
    pass
else:
    make_request = AsyncSQSConnection.make_request

    def recorded_request(self, operation, params, queue_url, verb, *args, **kwargs):
        record("sqs", operation, {"QueueUrl": queue_url})
        return make_request(self, operation, params, queue_url, verb, *args, **kwargs)

    AsyncSQSConnection.make_request = recorded_request
