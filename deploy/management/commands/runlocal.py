"""Run the whole system on this machine: local AWS, web server and the worker fleet.

State survives a restart: the database is in var/, the local S3's objects are kept in
var/local-aws/ (deploy.local), the local login keeps its password (and the browser its session).
"""
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from classifier.models import FINAL_STATUSES, Image
from classifier.pipeline import MISSING
from classifier.tasks import requeue
from deploy.local import port_taken, start_moto
from deploy.provision import provision
from imgsite.aws import client
from imgsite.processes import start_process, stop_process, wait_for_port

LOCAL_USER = "demo"


def local_password():
    """One generated password per checkout, kept in var/ so it survives restarts."""
    path = settings.VAR_DIR / "local-password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_local_user():
    """The local login, with the password from var/. Its hash is only rewritten when the password
    does not match: a new hash would sign every browser out (sessions carry a hash of it)."""
    password = local_password()
    user, _ = get_user_model().objects.get_or_create(username=LOCAL_USER)
    if not (user.is_staff and user.is_superuser and user.is_active and user.check_password(password)):
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
    return LOCAL_USER, password


def busy_port_message(port, what, variable, example):
    return (f"Port {port} is already in use by another program, and {what} needs it. Stop that program, "
            f"or choose another port: {variable}={example} make run")


def stored_names(bucket):
    """Every object key in the bucket."""
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


@dataclass
class Reconciled:
    requeued: int = 0
    missing: int = 0
    thumbnails_missing: int = 0


def reconcile_images(stored):
    """After the local AWS restarts, make every row true again. Images that were waiting lost
    their SQS messages (the local queue starts empty): they are queued again. An image whose
    original is not among the `stored` names fails with the missing-file reason; a thumbnail
    that is not stored is forgotten (the card shows no preview, not a broken one, and reuse by
    content cannot share it). Returns what changed."""
    report = Reconciled()
    rows = list(Image.objects.values_list("pk", "file", "thumbnail", "status"))
    lost = {pk for pk, file, _, _ in rows if file not in stored}
    with transaction.atomic():
        report.missing = Image.objects.filter(pk__in=lost).update(
            status=Image.Status.FAILED, error_code=MISSING[0], error=MISSING[1], thumbnail="")
        report.thumbnails_missing = Image.objects.filter(
            pk__in=[pk for pk, _, thumbnail, _ in rows if thumbnail and thumbnail not in stored and pk not in lost]
        ).update(thumbnail="")
    waiting = [pk for pk, _, _, status in rows if status not in FINAL_STATUSES and pk not in lost]
    report.requeued = requeue(waiting) if waiting else 0
    return report


class Command(BaseCommand):
    help = "Start moto (S3, SQS, EC2), provision, then the web server and the autoscaled local workers."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--max-workers", type=int, default=settings.AUTOSCALE_MAX_NODES)

    def handle(self, *args, port, max_workers, **options):
        endpoint = urlsplit(settings.AWS_ENDPOINT_URL or "")
        if endpoint.hostname not in ("127.0.0.1", "localhost"):
            raise CommandError("runlocal needs AWS_ENDPOINT_URL on this machine, e.g. http://127.0.0.1:5000")
        # Before anything starts: a busy port would otherwise answer for us (another program's moto
        # or web server), and the banner would lie.
        if port_taken("127.0.0.1", port):
            raise CommandError(busy_port_message(port, "the web server", "PORT", port + 1))
        if port_taken(endpoint.hostname, endpoint.port):
            raise CommandError(busy_port_message(endpoint.port, "the local AWS (moto)", "MOTO_PORT", endpoint.port + 1)
                               + f" (running manage.py runlocal yourself: AWS_ENDPOINT_URL=http://127.0.0.1:"
                               f"{endpoint.port + 1})")
        self.stopping = False
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.logs = settings.VAR_DIR / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children = []
        try:
            self.start_everything(port, max_workers)
            self.wait()
        finally:
            self.stop_everything()

    def request_stop(self, signum, frame):
        self.stopping = True

    def start_everything(self, port, max_workers):
        self.children.append(("moto", start_moto(settings.AWS_ENDPOINT_URL, log_path=self.logs / "moto.log",
                                                 state_dir=settings.VAR_DIR / "local-aws")))
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)  # the rate limits' shared cache
        call_command("collectstatic", interactive=False, verbosity=0)
        for change in provision():
            self.stdout.write(f"provision: {change}")
        self.report(reconcile_images(stored_names(settings.IMAGE_BUCKET)))
        username, password = ensure_local_user()
        # The production config (preloaded, log format, no control socket shared with another run), smaller.
        config = str(settings.BASE_DIR / "imgsite" / "gunicorn.conf.py")
        self.start_child("web", [sys.executable, "-m", "gunicorn", "-c", config, "imgsite.wsgi",
                                 "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"])
        wait_for_port("127.0.0.1", port, process=self.children[-1][1])
        # A local worker is up in seconds, not an instance's minute or more.
        self.start_child("autoscaler", [sys.executable, "manage.py", "autoscale", "--backend", "local",
                                        "--min", "0", "--max", str(max_workers), "--interval", "2",
                                        "--retire-on-exit"], env={"AUTOSCALE_BOOT_SECONDS": "10"})
        self.stdout.write(self.style.SUCCESS(
            f"imgsite is running at http://127.0.0.1:{port}/  (log in as {username} / {password})\n"
            f"logs: {self.logs}   stop: Ctrl-C"
        ))

    def report(self, reconciled):
        if reconciled.requeued:
            self.stdout.write(f"{reconciled.requeued} image(s) were waiting when imgsite last stopped: queued again.")
        if reconciled.missing:
            self.stdout.write(self.style.WARNING(
                f"{reconciled.missing} image(s) had lost their stored file (local storage in "
                f"{settings.VAR_DIR / 'local-aws'} was removed, or predates it): marked failed; delete them, "
                "or upload them again."))
        if reconciled.thumbnails_missing:
            self.stdout.write(self.style.WARNING(
                f"{reconciled.thumbnails_missing} thumbnail(s) were missing from local storage: those images show "
                "no preview."))

    def start_child(self, name, argv, env=None):
        """Start a child with this environment; `env` gives defaults that the environment overrides."""
        process = start_process(argv, env={**(env or {}), **os.environ}, log_path=self.logs / f"{name}.log")
        self.children.append((name, process))

    def wait(self):
        while not self.stopping:
            for name, process in self.children:
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with {process.returncode}; see {self.logs / name}.log")
                    return
            time.sleep(0.5)

    def stop_everything(self):
        # Reverse order: the autoscaler drains its workers before moto goes away.
        for _, process in reversed(self.children):
            stop_process(process, timeout=settings.AUTOSCALE_DRAIN_TIMEOUT + 10)
        self.stdout.write("stopped")
