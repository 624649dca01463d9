"""Sentry: off (not even imported) without SENTRY_DSN; with one, errors and check-ins are sent.

The DSN points at a dummy HTTP server in this process: no network."""
import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script, **environment):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DEBUG": "true", "VAR_DIR": str(ROOT / "var"),
           **environment}
    if "SENTRY_DSN" not in environment:
        env.pop("SENTRY_DSN", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture
def sentry_server():
    """Records the envelopes posted to it, decompressed and split into items."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "br":
                import brotli

                body = brotli.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            received.append((self.path, [json.loads(line) for line in body.splitlines() if line.strip()]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://publickey@127.0.0.1:{server.server_port}/42", received
    server.shutdown()


def test_without_a_dsn_sentry_is_not_even_imported():
    shown = run("""
import json, sys, django
django.setup()
import imgsite.urls, scaling.monitoring, classifier.tasks
print(json.dumps({"imported": "sentry_sdk" in sys.modules}))
""")
    assert shown == {"imported": False}


def test_with_a_dsn_errors_and_check_ins_reach_sentry(sentry_server):
    dsn, received = sentry_server
    shown = run("""
import json, django
django.setup()
import sentry_sdk
from imgsite.sentry import check_in
try:
    1 / 0
except ZeroDivisionError as exc:
    sentry_sdk.capture_exception(exc)
check_in("imgsite-autoscaler", ok=False, interval_seconds=15)
sentry_sdk.flush(10)
client = sentry_sdk.get_client()
print(json.dumps({"active": client.is_active(), "integrations": sorted(client.integrations),
                  "environment": client.options["environment"], "pii": client.options["send_default_pii"]}))
""", SENTRY_DSN=dsn, SENTRY_ENVIRONMENT="staging")

    assert shown["active"] and {"django", "celery", "logging"} <= set(shown["integrations"])
    assert shown["environment"] == "staging" and shown["pii"] is False
    assert {path for path, _ in received} == {"/api/42/envelope/"}
    items = [item for _, envelope in received for item in envelope[1:]]
    events = [item for item in items if item.get("exception")]
    assert events and events[0]["exception"]["values"][0]["type"] == "ZeroDivisionError"
    check_ins = [item for item in items if item.get("monitor_slug")]
    assert check_ins[0]["monitor_slug"] == "imgsite-autoscaler" and check_ins[0]["status"] == "error"
    assert check_ins[0]["monitor_config"]["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}


def test_a_malformed_dsn_stops_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsite.settings", "DEBUG": "true", "SENTRY_DSN": "sentry.example"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "SENTRY_DSN must look like" in result.stderr
