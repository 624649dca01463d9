"""The image bucket's posture: private, encrypted, TLS-only, no stale multipart uploads, and open to
uploads from the site's pages only (CORS: browsers post originals to it straight, with presigned POSTs).

`ensure_bucket` creates the bucket, or checks an existing one and repairs what drifted; each
`ensure_*` returns the changes it made (or would make, with dry_run). Rules and statements of
others are kept: only imgsite's own (named by ID and Sid) are added or replaced.
"""
import json

from botocore.exceptions import ClientError
from django.conf import settings

from imgsite.aws import client

PRIVATE_BUCKET = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
ENCRYPTED = ("AES256", "aws:kms", "aws:kms:dsse")  # SSE-S3, or a KMS key the owner chose: both are kept
TLS_SID = "imgsite-deny-insecure-transport"
ABORT_UPLOADS = {
    "ID": "imgsite-abort-incomplete-multipart-uploads",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}

UPLOADS_CORS_ID = "imgsite-direct-uploads"


def uploads_cors_rule(origins):
    """Pages of the site's `origins` may POST to the bucket (each POST still needs its presigned
    policy); the browser may keep the answer to its preflight request for an hour."""
    return {"ID": UPLOADS_CORS_ID, "AllowedMethods": ["POST"], "AllowedOrigins": sorted(origins),
            "AllowedHeaders": ["*"], "MaxAgeSeconds": 3600}


def absent(exc, *codes):
    """True when a Get* call failed because the configuration does not exist."""
    return exc.response["Error"]["Code"] in codes


def bucket_setting(name, get, missing, key, default):
    """`key` of the answer to the bucket's Get* call `get`, or `default` when the configuration does
    not exist (S3 answers the error `missing` rather than an empty one)."""
    try:
        return getattr(client("s3"), get)(Bucket=name)[key]
    except ClientError as exc:
        if not absent(exc, missing):
            raise
        return default


def bucket_exists(name):
    try:
        client("s3").head_bucket(Bucket=name)
        return True
    except ClientError as exc:
        if absent(exc, "404", "NoSuchBucket", "NotFound"):
            return False
        raise


def requires_tls():
    """Real S3 is reached over HTTPS; a local http endpoint (moto) could not satisfy a TLS-only policy."""
    return not settings.AWS_ENDPOINT_URL or settings.AWS_ENDPOINT_URL.startswith("https://")


def tls_statement(name):
    return {
        "Sid": TLS_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def ensure_public_access_block(name, dry_run=False):
    current = bucket_setting(name, "get_public_access_block", "NoSuchPublicAccessBlockConfiguration",
                             "PublicAccessBlockConfiguration", {})
    if all(current.get(key) for key in PRIVATE_BUCKET):
        return []
    if not dry_run:
        client("s3").put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=PRIVATE_BUCKET)
    return [f"block all public access to bucket {name}"]


def ensure_encryption(name, dry_run=False):
    rules = bucket_setting(name, "get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError",
                           "ServerSideEncryptionConfiguration", {}).get("Rules", [])
    if any(rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") in ENCRYPTED for rule in rules):
        return []
    if not dry_run:
        client("s3").put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=ENCRYPTION)
    return [f"encrypt new objects in bucket {name} by default (AES256)"]


def ensure_tls_only(name, dry_run=False):
    policy = json.loads(bucket_setting(name, "get_bucket_policy", "NoSuchBucketPolicy", "Policy",
                                       '{"Version": "2012-10-17", "Statement": []}'))
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    if tls_statement(name) in statements:
        return []
    if not dry_run:
        others = [statement for statement in statements if statement.get("Sid") != TLS_SID]
        policy = {**policy, "Statement": [*others, tls_statement(name)]}
        client("s3").put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return [f"deny requests without TLS in the policy of bucket {name}"]


def ensure_lifecycle(name, dry_run=False):
    rules = bucket_setting(name, "get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration", "Rules", [])
    if ABORT_UPLOADS in rules:
        return []
    if not dry_run:
        others = [rule for rule in rules if rule.get("ID") != ABORT_UPLOADS["ID"]]
        client("s3").put_bucket_lifecycle_configuration(Bucket=name,
                                                        LifecycleConfiguration={"Rules": [*others, ABORT_UPLOADS]})
    return [f"abort incomplete multipart uploads to bucket {name} after a day"]


def ensure_upload_cors(name, origins, dry_run=False):
    """The CORS rule that lets the site's pages (`origins`) upload to the bucket; others' rules are kept."""
    rules = bucket_setting(name, "get_bucket_cors", "NoSuchCORSConfiguration", "CORSRules", [])
    wanted = uploads_cors_rule(origins)
    ours = [rule for rule in rules if rule.get("ID") == UPLOADS_CORS_ID]
    if not origins and not ours or ours == [wanted]:
        return []
    others = [rule for rule in rules if rule.get("ID") != UPLOADS_CORS_ID]
    if not dry_run:
        if others or origins:
            client("s3").put_bucket_cors(Bucket=name, CORSConfiguration={
                "CORSRules": [*others, *([wanted] if origins else [])]})
        else:
            client("s3").delete_bucket_cors(Bucket=name)
    if not origins:
        return [f"stop browser uploads to bucket {name} (no UPLOAD_ORIGINS)"]
    return [f"allow browser uploads to bucket {name} from {', '.join(sorted(origins))}"]


def ensure_posture(name, dry_run=False):
    changes = ensure_public_access_block(name, dry_run) + ensure_encryption(name, dry_run)
    if requires_tls():
        changes += ensure_tls_only(name, dry_run)
    return changes + ensure_lifecycle(name, dry_run) + ensure_upload_cors(name, settings.UPLOAD_ORIGINS, dry_run)


def ensure_bucket(name, dry_run=False):
    """Create the private bucket with its posture, or check and repair an existing one's."""
    if bucket_exists(name):
        return ensure_posture(name, dry_run)
    if not dry_run:
        kwargs = {}
        if settings.AWS_REGION != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.AWS_REGION}
        client("s3").create_bucket(Bucket=name, **kwargs)
        ensure_posture(name)
    return [f"create private bucket {name}"]


def delete_bucket(name, dry_run=False):
    """Delete the bucket only if it is empty: images are the users' data, never removed here."""
    if not bucket_exists(name):
        return []
    if client("s3").list_objects_v2(Bucket=name, MaxKeys=1).get("KeyCount", 0):
        return [f"keep bucket {name}: it still holds images (empty it yourself to delete it)"]
    if not dry_run:
        client("s3").delete_bucket(Bucket=name)
    return [f"delete bucket {name}"]
