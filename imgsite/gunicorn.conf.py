"""gunicorn for the web tier: `gunicorn -c imgsite/gunicorn.conf.py imgsite.wsgi`.

Requests spend their time streaming uploads to S3, not on the CPU, so each process
runs threads. Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""
import os

from imgsite.logs import logging_config, under_journald

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
worker_class = "gthread"
# Import the app once in the master and fork the workers from it: each worker starts at once
# (also when max_requests recycles it) and shares the imported code's memory. Nothing opens a
# connection at import time; clients and database connections are made per process, lazily.
preload_app = True
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# A request of MAX_FILES_PER_REQUEST files goes to S3 one file after another.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))
graceful_timeout = 30
keepalive = 5
# Recycle processes now and then, so a slow leak never takes the web tier down.
max_requests = 2000
max_requests_jitter = 200
# gunicorn's own lines (access log, boots) go through the application's handler and format
# (LOG_FORMAT), once each; see imgsite/logs.py.
logconfig_dict = logging_config(os.environ.get("LOG_FORMAT", "plain"), os.environ.get("LOG_LEVEL", "INFO"),
                                journald=under_journald())
# Every gunicorn on a host would share one default control socket path ($XDG_RUNTIME_DIR or
# ~/.gunicorn/gunicorn.ctl), each new master taking it from the last. systemd (or runlocal)
# manages these processes with signals, so none gets a control socket.
control_socket_disable = True
# Behind a load balancer, set FORWARDED_ALLOW_IPS to its addresses (or "*" inside a private subnet).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
