"""The Content-Security-Policy header: no inline or eval'd script or style anywhere, and img-src
and connect-src allow exactly the origin of the bucket's presigned URLs, GETs and POSTs (the browser
tests, tests/web/test_csp.py and tests/web/test_browser.py, show that every page works under it)."""
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from django.conf import settings
from django.core.files.storage import default_storage

from imgsite.settings import bucket_origin


def origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_the_origin_on_aws_is_where_boto3_presigns(region, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # boto3 reads it: the suite's points at moto
    s3 = boto3.client("s3", region_name=region, config=Config(signature_version="s3v4",
                                                              s3={"addressing_style": "virtual"}))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "imgsite-images", "Key": "images/x/thumbnail.jpg"})
    assert origin(url) == bucket_origin("imgsite-images", region, "")
    post = s3.generate_presigned_post("imgsite-images", "images/x/original")
    assert origin(post["url"]) == bucket_origin("imgsite-images", region, "")


def test_the_configured_origin_is_where_the_storage_presigns():
    url = default_storage.signed_url("images/x/thumbnail.jpg", "image/jpeg")
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"] == ["'self'", "data:", origin(url)]
    post = default_storage.presigned_post("images/x/original", 10, 60)
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"] == ["'self'", origin(post["url"])]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/", "/api/v1/docs", "/api/v1/docs?script="])
def test_every_answer_carries_a_policy_without_inline_or_eval(client, path):
    header = client.get(path)["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in header.split(";"))
    assert directives["default-src"] == directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in header
