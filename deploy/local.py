"""The embedded local AWS: a moto server in its own process, whose S3 objects outlive it.

moto keeps its state in memory. For `make run` (given a state directory), every object the bucket
stores is also written to that directory before moto answers, and read back into a bucket of the
same name when that bucket is created again (runlocal provisions it on every start): restarting
keeps every image viewable. SQS messages are not kept; runlocal re-queues the images that were
waiting (`reconcile_images`). The test suite's moto keeps nothing.
"""
import hashlib
import inspect
import json
import os
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from imgsite.processes import start_process, wait_for_port


def moto_app(state_dir=None):
    """moto's server-mode WSGI app: the one `python -m moto.server` runs (S3, SQS, EC2, Auto Scaling);
    with `state_dir`, S3 objects are kept there (ObjectMirror)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    answer_post_uploads_with_cors()
    app = DomainDispatcherApplication(create_backend_app)
    return ObjectMirror(Path(state_dir)).install(app) if state_dir else app


def answer_post_uploads_with_cors():
    """S3 answers a browser's POST upload with the CORS headers of the bucket's matching rule (so the
    page may read the answer); moto answers the preflight but not the POST. Add them, in moto's process."""
    from moto.s3.responses import S3Response

    post = S3Response._bucket_response_post
    if getattr(post, "answers_with_cors", False):
        return

    def post_with_cors(self, request, bucket_name):
        status, headers, body = post(self, request, bucket_name)
        return status, {**self._get_cors_headers_other(), **headers}, body

    post_with_cors.answers_with_cors = True
    S3Response._bucket_response_post = post_with_cors


def start_moto(endpoint_url, log_path=None, state_dir=None):
    """Run moto in server mode on the endpoint's host and port, in one gunicorn process.

    moto keeps its state in memory, so one process; gunicorn's thread pool and keep-alive
    cost less CPU per request than moto's own Werkzeug development server (bench/README.md),
    and all of the local stack shares the cores."""
    address = urlsplit(endpoint_url)
    app = f"deploy.local:moto_app({str(state_dir)!r})" if state_dir else "deploy.local:moto_app()"
    argv = [sys.executable, "-m", "gunicorn", app,
            "--bind", f"{address.hostname}:{address.port}", "--workers", "1", "--worker-class", "gthread",
            "--threads", "8", "--keep-alive", "75", "--graceful-timeout", "5", "--log-level", "warning"]
    # As on S3, only the bucket's own CORS rule (deploy/bucket.py) lets the site's pages post to it.
    env = {**os.environ, "MOTO_PORT": str(address.port), "MOTO_DISABLE_GLOBAL_CORS": "true"}
    process = start_process(argv, env=env, log_path=log_path)
    wait_for_port(address.hostname, address.port, process=process)
    return process


class ObjectMirror:
    """Keeps a copy of each S3 object moto stores in a directory: <bucket>/<sha256 of key>.data,
    with the key, its metadata and encryption in a .json beside it. Installed into moto's S3
    backend in moto's own process (it wraps put_object, delete_object and create_bucket, the
    calls every PutObject, POST upload, copy, multipart completion and delete go through).
    Django is not set up in that process: this module imports nothing of the application."""

    def __init__(self, directory):
        self.directory = directory
        self.touched = threading.local()
        self.put_object = None  # moto's own, unwrapped, for restoring

    def install(self, app):
        from moto.s3.models import S3Backend

        self.put_object = put_object = S3Backend.put_object
        delete_object, create_bucket = S3Backend.delete_object, S3Backend.create_bucket
        mirror = self

        def touching(method):
            signature = inspect.signature(method)

            def wrapper(backend, *args, **kwargs):
                result = method(backend, *args, **kwargs)
                call = signature.bind(backend, *args, **kwargs).arguments
                mirror.touch(backend, call["bucket_name"], call["key_name"])
                return result
            return wrapper

        def create_and_restore(backend, bucket_name, *args, **kwargs):
            bucket = create_bucket(backend, bucket_name, *args, **kwargs)
            mirror.restore(backend, bucket_name)
            return bucket

        S3Backend.put_object = touching(put_object)
        S3Backend.delete_object = touching(delete_object)
        S3Backend.create_bucket = create_and_restore
        return self.wsgi(app)

    def wsgi(self, app):
        """The app, writing the objects a request changed before its answer goes out: an object
        moto said it stored is on disk."""
        def application(environ, start_response):
            self.touched.keys = {}
            try:
                body = list(app(environ, start_response))
            finally:
                self.flush()
            return body
        return application

    def touch(self, backend, bucket_name, key_name):
        if not hasattr(self.touched, "keys"):
            self.touched.keys = {}
        self.touched.keys[(bucket_name, key_name)] = backend

    def paths(self, bucket_name, key_name):
        stem = self.directory / bucket_name / hashlib.sha256(key_name.encode()).hexdigest()
        return stem.with_suffix(".data"), stem.with_suffix(".json")

    def flush(self):
        touched, self.touched.keys = getattr(self.touched, "keys", {}), {}
        for (bucket_name, key_name), backend in touched.items():
            bucket = backend.buckets.get(bucket_name)
            key = bucket.keys.get(key_name) if bucket else None
            data_path, meta_path = self.paths(bucket_name, key_name)
            if key is None or not hasattr(key, "value"):  # deleted (or a delete marker)
                meta_path.unlink(missing_ok=True)
                data_path.unlink(missing_ok=True)
                continue
            data_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(data_path, key.value)
            write_atomically(meta_path, json.dumps({
                "key": key_name, "metadata": dict(key.metadata), "encryption": key.encryption,
            }).encode())

    def restore(self, backend, bucket_name):
        """Put the kept objects of `bucket_name` back into moto's new, empty bucket."""
        for meta_path in sorted((self.directory / bucket_name).glob("*.json")):
            data_path = meta_path.with_suffix(".data")
            try:
                meta = json.loads(meta_path.read_text())
                data = data_path.read_bytes()
            except (OSError, ValueError):
                continue  # half written when the process was killed: that object was never acknowledged
            key = self.put_object(backend, bucket_name, meta["key"], data, encryption=meta["encryption"],
                                  disable_notification=True)
            key.set_metadata(meta["metadata"])


def write_atomically(path, data):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def port_taken(host, port):
    """True when this port can't be bound: another program (or another imgsite) listens on it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no clash
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
