"""The bucket's posture on an existing bucket: checked and repaired by provision, others' rules kept.
On the suite's moto server, which stores all four configurations (but does not evaluate a Deny
statement's condition as S3 does, so the TLS-only policy is checked as a document)."""
import json

import pytest
import requests
from django.conf import settings
from django.core.files.storage import default_storage

from deploy import bucket
from deploy.bucket import (
    ABORT_UPLOADS,
    PRIVATE_BUCKET,
    TLS_SID,
    ensure_bucket,
    ensure_upload_cors,
    requires_tls,
    uploads_cors_rule,
)
from deploy.provision import provision
from imgsite.aws import client

OTHER_RULE = {"ID": "someone-elses", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
OTHER_STATEMENT = {"Sid": "someone-elses", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
                   "Resource": "arn:aws:s3:::{name}"}


def s3():
    return client("s3")


def bare_bucket(name):
    """A bucket made outside provision: no public-access block, encryption, policy or lifecycle."""
    s3().create_bucket(Bucket=name)


def posture(name):
    return {
        "block": s3().get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
        "encryption": s3().get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "rules": s3().get_bucket_lifecycle_configuration(Bucket=name)["Rules"],
    }


def test_an_existing_bucket_is_checked_and_repaired(own_names):
    bare_bucket(own_names)
    s3().put_public_access_block(Bucket=own_names, PublicAccessBlockConfiguration={**PRIVATE_BUCKET,
                                                                                  "BlockPublicPolicy": False})
    s3().put_bucket_lifecycle_configuration(Bucket=own_names, LifecycleConfiguration={"Rules": [OTHER_RULE]})

    assert provision(dry_run=True)[:3] == provision()[:3] == [
        f"block all public access to bucket {own_names}",
        f"encrypt new objects in bucket {own_names} by default (AES256)",
        f"abort incomplete multipart uploads to bucket {own_names} after a day",
    ]
    now = posture(own_names)
    assert now["block"] == PRIVATE_BUCKET and now["encryption"] == "AES256"
    assert OTHER_RULE in now["rules"] and ABORT_UPLOADS in now["rules"]
    assert provision() == []


def test_a_dry_run_repairs_nothing(own_names):
    bare_bucket(own_names)
    assert len(ensure_bucket(own_names, dry_run=True)) == 4
    assert len(ensure_bucket(own_names, dry_run=True)) == 4


def test_a_new_bucket_is_created_with_its_posture(own_names):
    assert ensure_bucket(own_names) == [f"create private bucket {own_names}"]
    assert posture(own_names)["rules"] == [ABORT_UPLOADS]
    assert ensure_bucket(own_names) == []


def test_a_kms_key_of_the_owners_choice_is_kept(own_names):
    bare_bucket(own_names)
    s3().put_bucket_encryption(Bucket=own_names, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/imgsite"}}]})
    assert not any("encrypt" in change for change in ensure_bucket(own_names))
    assert posture(own_names)["encryption"] == "aws:kms"


def test_on_aws_the_policy_denies_requests_without_tls(own_names, monkeypatch):
    monkeypatch.setattr(bucket, "requires_tls", lambda: True)
    bare_bucket(own_names)
    other = json.loads(json.dumps(OTHER_STATEMENT).replace("{name}", own_names))
    s3().put_bucket_policy(Bucket=own_names, Policy=json.dumps({"Version": "2012-10-17", "Statement": [other]}))

    assert f"deny requests without TLS in the policy of bucket {own_names}" in ensure_bucket(own_names)
    statements = json.loads(s3().get_bucket_policy(Bucket=own_names)["Policy"])["Statement"]
    assert other in statements
    tls = next(statement for statement in statements if statement["Sid"] == TLS_SID)
    assert tls["Effect"] == "Deny" and tls["Action"] == "s3:*" and tls["Principal"] == "*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(tls["Resource"]) == [f"arn:aws:s3:::{own_names}", f"arn:aws:s3:::{own_names}/*"]
    assert ensure_bucket(own_names) == []
    s3().delete_bucket_policy(Bucket=own_names)  # moto would deny the fixture's clean-up over http


@pytest.mark.parametrize("endpoint, wanted", [("", True), ("https://s3.example.com", True),
                                              ("http://127.0.0.1:5000", False)])
def test_tls_is_required_wherever_clients_use_it(settings, endpoint, wanted):
    settings.AWS_ENDPOINT_URL = endpoint
    assert requires_tls() is wanted


def test_the_suites_bucket_has_the_posture(aws):
    assert posture(settings.IMAGE_BUCKET)["block"] == PRIVATE_BUCKET
    assert ABORT_UPLOADS in posture(settings.IMAGE_BUCKET)["rules"]


OTHER_CORS = {"ID": "someone-elses", "AllowedMethods": ["GET"], "AllowedOrigins": ["https://other.example.com"]}


def cors_rules(name):
    return s3().get_bucket_cors(Bucket=name)["CORSRules"]


def test_the_sites_pages_may_post_to_the_bucket_and_others_rules_are_kept(own_names, settings):
    bare_bucket(own_names)
    s3().put_bucket_cors(Bucket=own_names, CORSConfiguration={"CORSRules": [OTHER_CORS]})
    settings.UPLOAD_ORIGINS = ["https://imgsite.example.com"]
    assert ensure_upload_cors(own_names, settings.UPLOAD_ORIGINS, dry_run=True) == [
        f"allow browser uploads to bucket {own_names} from https://imgsite.example.com"]
    assert cors_rules(own_names) == [OTHER_CORS]

    assert ensure_bucket(own_names)[-1] == f"allow browser uploads to bucket {own_names} from https://imgsite.example.com"
    assert cors_rules(own_names) == [OTHER_CORS, uploads_cors_rule(["https://imgsite.example.com"])]
    assert ensure_bucket(own_names) == []

    settings.UPLOAD_ORIGINS = ["https://imgsite.example.com", "https://www.imgsite.example.com"]
    assert len(ensure_bucket(own_names)) == 1 and cors_rules(own_names)[1]["AllowedOrigins"] == settings.UPLOAD_ORIGINS
    settings.UPLOAD_ORIGINS = []
    assert ensure_bucket(own_names) == [f"stop browser uploads to bucket {own_names} (no UPLOAD_ORIGINS)"]
    assert cors_rules(own_names) == [OTHER_CORS] and ensure_bucket(own_names) == []


def test_the_suites_pages_may_post_to_its_bucket_and_no_other_page_may(aws):
    [rule] = cors_rules(settings.IMAGE_BUCKET)
    assert rule["AllowedMethods"] == ["POST"]
    assert rule["AllowedOrigins"] == ["http://127.0.0.1:*", "http://localhost:*"]  # DEBUG: any port here
    key = "images/00000000-0000-4000-8000-000000000000/original"
    post = default_storage.presigned_post(key, 3, 60)
    for origin, allowed in [("http://localhost:8000", True), ("https://elsewhere.example", False)]:
        preflight = requests.options(post["url"], timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert (preflight.headers.get("Access-Control-Allow-Origin") == origin) is allowed
        answer = requests.post(post["url"], data=post["fields"], files={"file": ("blob", b"abc")},
                               headers={"Origin": origin}, timeout=10)  # the page may read it, or not
        assert answer.status_code == 204 and (answer.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    default_storage.delete_many([key])
