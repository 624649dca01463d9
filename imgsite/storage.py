"""The private image bucket, as a django-storages S3 storage with the few extra calls imgsite makes.

Django's file API (FileField.save, .url) works as usual. The worker and the models use the
one-call methods: `read` (one GetObject), `write` (one PutObject) and `delete_many`
(DeleteObjects, 1,000 keys a call): django-storages' file objects cost a HEAD and a
transfer-manager hand-off per object, which dominated a worker's time (bench/README.md).

The stored Content-Type never follows a file's name: a name is the user's to choose. Every
object is stored as an attachment, and its presigned URLs name the type and disposition the
browser must use (`signed_url`), so that no object can be rendered as a page of this site's bucket.
"""
import logging
import os
import posixpath
import threading

from botocore.config import Config
from botocore.exceptions import ClientError
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

log = logging.getLogger(__name__)

MISSING = ("404", "NoSuchKey", "NotFound")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Object parameters as the form fields of a POST upload.
POST_FIELDS = {"ContentDisposition": "Content-Disposition", "ServerSideEncryption": "x-amz-server-side-encryption",
               "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id", "CacheControl": "Cache-Control"}


class ImageStorage(S3Storage):
    default_content_type = DEFAULT_CONTENT_TYPE

    def __init__(self, **settings):
        super().__init__(**settings)
        # Checksums only where S3 requires them: TLS already protects every transfer, and a CRC
        # over each object, both ways, is a cost per image (bench/README.md).
        self.client_config = self.client_config.merge(Config(
            request_checksum_calculation="when_required", response_checksum_validation="when_required"))
        self._shared_client = (None, None)
        self._client_lock = threading.Lock()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_client_lock", None)
        state["_shared_client"] = (None, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._client_lock = threading.Lock()

    @property
    def client(self):
        """One boto3 client per process (clients are thread-safe; the resources behind
        `connection` are not, so django-storages makes one per thread). Made after a fork,
        never inherited: a forked child must not share its parent's sockets."""
        pid, client = self._shared_client
        if pid != os.getpid():
            with self._client_lock:
                pid, client = self._shared_client
                if pid != os.getpid():
                    client = self.connection.meta.client
                    self._shared_client = (os.getpid(), client)
        return client

    def key(self, name):
        return self._normalize_name(clean_name(name))

    def read(self, name, limit=None):
        """The object's bytes (at most `limit` + 1 of them when given), or None when it does not exist."""
        try:
            body = self.client.get_object(Bucket=self.bucket_name, Key=self.key(name))["Body"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] in MISSING:
                return None
            raise
        with body:
            return body.read() if limit is None else body.read(limit + 1)

    def write(self, name, data, content_type):
        """Store `data` under `name` with this Content-Type, in one PutObject; returns the name."""
        self.client.put_object(Bucket=self.bucket_name, Key=self.key(name), Body=data, ContentType=content_type,
                               **self.get_object_parameters(name))
        return clean_name(name)

    def delete_many(self, names):
        """Delete these objects, 1,000 keys per call; returns how many S3 reported deleted."""
        keys = sorted({self.key(name) for name in names if name})
        deleted = 0
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start:start + 1000]]
            answer = self.client.delete_objects(Bucket=self.bucket_name, Delete={"Objects": objects, "Quiet": True})
            for error in answer.get("Errors", []):
                log.warning("could not delete %s: %s", error.get("Key"), error.get("Message"))
            deleted += len(objects) - len(answer.get("Errors", []))
        return deleted

    def list_page(self, prefix, start_after="", limit=1000):
        """One ListObjectsV2 page of the objects under `prefix`, after the name `start_after`:
        ([(name, last modified)], the name to start the next page after, or "" at the end)."""
        answer = self.client.list_objects_v2(Bucket=self.bucket_name, Prefix=self.key(prefix), MaxKeys=limit,
                                             StartAfter=self.key(start_after) if start_after else "")
        found = [(item["Key"][len(self.location):].lstrip("/"), item["LastModified"])
                 for item in answer.get("Contents", [])]
        return found, found[-1][0] if found and answer.get("IsTruncated") else ""

    def sizes(self, prefix):
        """{name: size in bytes} of every object under `prefix`, 1,000 per ListObjectsV2 call."""
        found, token = {}, {}
        while True:
            answer = self.client.list_objects_v2(Bucket=self.bucket_name, Prefix=self.key(prefix), **token)
            found.update((item["Key"][len(self.location):].lstrip("/"), item["Size"])
                         for item in answer.get("Contents", []))
            if not answer.get("IsTruncated"):
                return found
            token = {"ContinuationToken": answer["NextContinuationToken"]}

    def presigned_post(self, name, size, expires):
        """A presigned POST that uploads exactly `size` bytes to `name`, within `expires` seconds:
        {"url": ..., "fields": {...}}, the fields to send before the file. The object is stored as
        application/octet-stream, whatever the client claims (S3 refuses a form field the policy
        does not name), and as an attachment, like every object here: its real type is found by
        the worker, and presigned GETs name it."""
        params = self.get_object_parameters(name)
        unknown = set(params) - set(POST_FIELDS)
        if unknown:
            raise ValueError(f"object parameters {sorted(unknown)} have no POST form field here")
        fields = {"Content-Type": DEFAULT_CONTENT_TYPE, **{POST_FIELDS[key]: value for key, value in params.items()}}
        conditions = [{field: value} for field, value in fields.items()] + [["content-length-range", size, size]]
        return self.client.generate_presigned_post(self.bucket_name, self.key(name), Fields=fields,
                                                   Conditions=conditions, ExpiresIn=expires)

    def get_object_parameters(self, name):
        """Every object is stored as an attachment named after its key (a UUID folder and the
        detected format's extension), so even a URL without overrides never renders it as a page."""
        params = super().get_object_parameters(name)
        params.setdefault("ContentDisposition", content_disposition_header(True, posixpath.basename(name)))
        return params

    def signed_url(self, name, content_type, download_name=None):
        """A presigned GET URL whose answer carries this Content-Type, and is an attachment named
        `download_name` when given (else shown inline): S3 answers with these whatever is stored."""
        disposition = content_disposition_header(True, download_name) if download_name else "inline"
        return self.url(name, parameters={"ResponseContentType": content_type,
                                          "ResponseContentDisposition": disposition})

    def _get_write_parameters(self, name, content=None):
        """django-storages guesses Content-Type and Content-Encoding from the name; here the
        type comes from the content (what was detected), else application/octet-stream."""
        params = self.get_object_parameters(name)
        params.setdefault("ContentType", getattr(content, "content_type", None) or self.default_content_type)
        params.pop("ContentEncoding", None)
        if "ACL" not in params and self.default_acl:
            params["ACL"] = self.default_acl
        return params
