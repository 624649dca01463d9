"""The embedded local AWS: a moto server in its own process."""
import os
import sys
from urllib.parse import urlsplit

from imgsite.processes import start_process, wait_for_port


def moto_app():
    """moto's server-mode WSGI app: the one `python -m moto.server` runs (S3, SQS, EC2, Auto Scaling)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def start_moto(endpoint_url, log_path=None):
    """Run moto in server mode on the endpoint's host and port, in one gunicorn process.

    moto keeps its state in memory, so one process; gunicorn's thread pool and keep-alive
    cost less CPU per request than moto's own Werkzeug development server (bench/README.md),
    and all of the local stack shares the cores."""
    address = urlsplit(endpoint_url)
    argv = [sys.executable, "-m", "gunicorn", "deploy.local:moto_app()",
            "--bind", f"{address.hostname}:{address.port}", "--workers", "1", "--worker-class", "gthread",
            "--threads", "8", "--keep-alive", "75", "--graceful-timeout", "5", "--log-level", "warning"]
    env = {**os.environ, "MOTO_PORT": str(address.port)}
    process = start_process(argv, env=env, log_path=log_path)
    wait_for_port(address.hostname, address.port, process=process)
    return process
