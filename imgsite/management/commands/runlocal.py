"""Run the whole system on this machine: local AWS, web server and the worker fleet."""
import os
import secrets
import signal
import sys
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from imgsite.local import start_moto, start_process, stop_process, wait_for_port
from imgsite.provision import provision

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
    password = local_password()
    user, _ = get_user_model().objects.get_or_create(username=LOCAL_USER, defaults={"is_staff": True})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return LOCAL_USER, password


class Command(BaseCommand):
    help = "Start moto (S3, SQS, EC2), provision, then the web server and the autoscaled local workers."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--max-workers", type=int, default=settings.AUTOSCALE_MAX_NODES)

    def handle(self, *args, port, max_workers, **options):
        endpoint = urlsplit(settings.AWS_ENDPOINT_URL or "")
        if endpoint.hostname not in ("127.0.0.1", "localhost"):
            raise CommandError("runlocal needs AWS_ENDPOINT_URL on this machine, e.g. http://127.0.0.1:5000")
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
        self.children.append(("moto", start_moto(settings.AWS_ENDPOINT_URL, log_path=self.logs / "moto.log")))
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)  # the rate limits' shared cache
        call_command("collectstatic", interactive=False, verbosity=0)
        for change in provision():
            self.stdout.write(f"provision: {change}")
        username, password = ensure_local_user()
        self.start_child("web", [sys.executable, "-m", "gunicorn", "imgsite.wsgi", "--bind", f"127.0.0.1:{port}",
                                 "--workers", "2", "--threads", "4", "--timeout", "120", "--preload"])
        wait_for_port("127.0.0.1", port, process=self.children[-1][1])
        self.start_child("autoscaler", [sys.executable, "manage.py", "autoscale", "--backend", "local",
                                        "--min", "0", "--max", str(max_workers), "--interval", "2",
                                        "--retire-on-exit"])
        self.stdout.write(self.style.SUCCESS(
            f"imgsite is running at http://127.0.0.1:{port}/  (log in as {username} / {password})\n"
            f"logs: {self.logs}   stop: Ctrl-C"
        ))

    def start_child(self, name, argv):
        process = start_process(argv, env=os.environ.copy(), log_path=self.logs / f"{name}.log")
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
