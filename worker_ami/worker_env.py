"""Write a worker machine's runtime environment file; run before each start of imgsite-worker.service.

- WORKER_NODE: this instance's id, from the instance metadata service (IMDSv2), so that the
  autoscaler's node ids and the workers' heartbeats name the same machine.
- WORKER_CONCURRENCY: the core count, unless /etc/imgsite/worker.env sets it.
- The allowed SSM parameters under SSM_PARAMETER_PREFIX (PARAMETERS: DATABASE_URL, naming the
  workers' own database role, and SENTRY_DSN), decrypted through the instance role, which may
  read those and no other. Secrets live only here, in a file the service user alone can read.
- SECRET_KEY: the worker's own, new on each start. A worker signs nothing another process
  checks, so it never holds the web tier's key, even when an operator put it under the prefix.

Standalone (the standard library and boto3), since Django settings need these very values.
Usage: worker_env.py /run/imgsite/worker.env
"""
import os
import re
import secrets
import sys
import urllib.request

import boto3

# What a worker may read from SSM (deploy/iam.py: WORKER_PARAMETERS grants exactly these).
PARAMETERS = ("DATABASE_URL", "SENTRY_DSN")
REQUIRED = ("DATABASE_URL",)


def metadata_endpoint():
    return os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def instance_id(timeout=2):
    """The instance id, asked with an IMDSv2 session token (launch templates require tokens)."""
    endpoint = metadata_endpoint()
    token_request = urllib.request.Request(f"{endpoint}/latest/api/token", method="PUT",
                                           headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token_request, timeout=timeout) as response:
        token = response.read().decode()
    request = urllib.request.Request(f"{endpoint}/latest/meta-data/instance-id",
                                     headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode().strip()


def parameters(prefix, ssm, names=PARAMETERS):
    """{NAME: value} for each of `names` that exists under `prefix`: one GetParameters call, by
    name, so the role needs no right to list the prefix or read anything else under it."""
    prefix = prefix.rstrip("/")
    answer = ssm.get_parameters(Names=[f"{prefix}/{name}" for name in names], WithDecryption=True)
    return {parameter["Name"].rsplit("/", 1)[-1]: parameter["Value"] for parameter in answer["Parameters"]}


def environment(ssm=None):
    prefix = os.environ["SSM_PARAMETER_PREFIX"]
    ssm = ssm or boto3.client("ssm", region_name=os.environ["AWS_REGION"])
    values = parameters(prefix, ssm)
    absent = [name for name in REQUIRED if not values.get(name)]
    if absent:
        raise SystemExit(f"worker_env: no {' or '.join(f'{prefix}/{name}' for name in absent)} in SSM Parameter "
                         "Store (see docs/deploy.md); the worker cannot start without it")
    concurrency = os.environ.get("WORKER_CONCURRENCY") or str(os.cpu_count() or 1)
    return {**values, "SECRET_KEY": secrets.token_urlsafe(50), "WORKER_NODE": instance_id(),
            "WORKER_CONCURRENCY": concurrency}


def quoted(value):
    """A double-quoted value as systemd's EnvironmentFile= reads it back unchanged."""
    if "\n" in value or "\r" in value:
        raise SystemExit("worker_env: a value with a line break cannot go into an environment file")
    return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'


def write_environment_file(path, values):
    """Atomically, readable by the owner only."""
    temporary = f"{path}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.writelines(f"{name}={quoted(value)}\n" for name, value in values.items())
    os.replace(temporary, path)


def main(argv):
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} OUTPUT_FILE")
    values = environment()
    write_environment_file(argv[1], values)
    read = sorted(set(values) & set(PARAMETERS))
    print(f"worker_env: wrote WORKER_NODE={values['WORKER_NODE']}, a new SECRET_KEY and {', '.join(read)} "
          f"to {argv[1]}")


if __name__ == "__main__":
    main(sys.argv)
