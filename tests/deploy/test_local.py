"""The local AWS keeps its S3 objects across restarts when given a state directory."""
import socket

import boto3
import pytest
import requests

from deploy.local import port_taken, start_moto
from imgsite.processes import free_port, stop_process


@pytest.fixture
def local_aws(tmp_path):
    """Start (and restart) a moto server of this test's own, keeping its objects in tmp_path/state."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    running = []

    def start():
        while running:
            stop_process(running.pop())
        running.append(start_moto(endpoint, log_path=tmp_path / "moto.log", state_dir=tmp_path / "state"))
        return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    yield start
    for process in running:
        stop_process(process)


def test_objects_come_back_when_the_bucket_is_created_again_after_a_restart(local_aws, tmp_path):
    s3 = local_aws()
    s3.create_bucket(Bucket="images")
    s3.put_object(Bucket="images", Key="images/a/original.jpg", Body=b"\xff\xd8 bytes", ContentType="image/jpeg",
                  ServerSideEncryption="AES256")
    s3.put_object(Bucket="images", Key="images/a/thumbnail.jpg", Body=b"thumb", ContentType="image/jpeg")
    s3.copy_object(Bucket="images", Key="images/b/thumbnail.jpg", CopySource="images/images/a/thumbnail.jpg")
    s3.put_object(Bucket="images", Key="images/a/thumbnail.jpg", Body=b"thumb 2", ContentType="image/jpeg")
    s3.delete_objects(Bucket="images", Delete={"Objects": [{"Key": "images/b/thumbnail.jpg"}]})
    post = s3.generate_presigned_post("images", "images/c/original.png")  # the browser's direct upload
    assert requests.post(post["url"], data=post["fields"], files={"file": b"png bytes"}).ok

    s3 = local_aws()  # moto restarts, empty
    assert s3.list_buckets()["Buckets"] == []
    s3.create_bucket(Bucket="images")  # as provisioning does on every start

    keys = {item["Key"] for item in s3.list_objects_v2(Bucket="images")["Contents"]}
    assert keys == {"images/a/original.jpg", "images/a/thumbnail.jpg", "images/c/original.png"}
    original = s3.get_object(Bucket="images", Key="images/a/original.jpg")
    assert original["Body"].read() == b"\xff\xd8 bytes" and original["ContentType"] == "image/jpeg"
    assert original["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket="images", Key="images/a/thumbnail.jpg")["Body"].read() == b"thumb 2"
    assert s3.get_object(Bucket="images", Key="images/c/original.png")["Body"].read() == b"png bytes"


def test_an_object_half_written_when_moto_was_killed_is_left_out(local_aws, tmp_path):
    s3 = local_aws()
    s3.create_bucket(Bucket="images")
    s3.put_object(Bucket="images", Key="kept.jpg", Body=b"kept")
    s3.put_object(Bucket="images", Key="torn.jpg", Body=b"torn")
    [torn] = [path for path in (tmp_path / "state" / "images").glob("*.json") if b"torn" in path.read_bytes()]
    torn.unlink()  # its bytes were written, its description not

    s3 = local_aws()
    s3.create_bucket(Bucket="images")
    assert [item["Key"] for item in s3.list_objects_v2(Bucket="images")["Contents"]] == ["kept.jpg"]


def test_a_port_another_program_listens_on_is_taken():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_taken("127.0.0.1", sock.getsockname()[1])
    assert not port_taken("127.0.0.1", free_port())
