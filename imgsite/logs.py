"""Log lines for every tier: plain text by default, one JSON object per line with LOG_FORMAT=json.

Django's LOGGING and gunicorn's logconfig_dict are both built here, so the web tier's own
lines (access log, worker boots) come out in the same format as the application's.
"""
import logging
import os
import sys

LOG_FORMATS = ("plain", "json")
# journald (SyslogLevelPrefix=yes, its default) reads a leading <N> as the line's priority.
SYSLOG_PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def under_journald(environ=os.environ, fd=2):
    """True when stderr is the journal stream systemd opened for this service (not merely inherited
    by a child whose output was redirected): systemd sets JOURNAL_STREAM to its device:inode."""
    stream = environ.get("JOURNAL_STREAM", "")
    try:
        status = os.fstat(fd)
    except OSError:
        return False
    return stream == f"{status.st_dev}:{status.st_ino}"


class JournalFormatter(logging.Formatter):
    """Plain lines without a timestamp (the journal stamps each line) and with journald's priority
    prefix, so `journalctl -p warning` finds warnings."""

    def format(self, record):
        return f"<{SYSLOG_PRIORITIES.get(record.levelno, 6)}>{super().format(record)}"


class TaskContext(logging.Filter):
    """Adds the running Celery task's id and name to each record (they show in JSON lines)."""

    def filter(self, record):
        celery = sys.modules.get("celery")  # no Celery loaded, no task running: no import for that
        task = celery.current_task if celery is not None else None
        if task and task.request.id and not hasattr(record, "task_id"):
            record.task_id, record.task_name = task.request.id, task.name
        return True


class ProbeNotError(logging.Filter):
    """A request for a host not in ALLOWED_HOSTS is a stranger's probe, not our fault: Django logs it
    as an ERROR with a traceback; keep it as a one-line warning (and out of Sentry's events)."""

    def filter(self, record):
        record.levelno, record.levelname, record.exc_info, record.exc_text = logging.WARNING, "WARNING", None, None
        return True


def formatter(log_format, journald):
    if log_format == "json":
        return {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"}, "timestamp": True}
    if journald:
        return {"()": "imgsite.logs.JournalFormatter", "format": "%(levelname)s %(name)s %(message)s"}
    return {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}


def logging_config(log_format="plain", level="INFO", journald=False):
    """The dictConfig for Django's LOGGING (and gunicorn's, see imgsite/gunicorn.conf.py).

    Every line goes through one handler on the root logger. Loggers that bring handlers of their
    own are reset to none, so that no line is written twice: Django's "django" logger (a console
    handler in DEBUG, which printed "Not Found: /x" twice) and gunicorn's error and access logs.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT={log_format!r} must be plain or json")
    level = level.upper()  # as settings read LOG_LEVEL, so that gunicorn's copy takes "info" too
    reset = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter(log_format, journald)},
        "filters": {"task": {"()": "imgsite.logs.TaskContext"}, "probe": {"()": "imgsite.logs.ProbeNotError"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["task"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {**reset, "level": "INFO"},
            "django.security.DisallowedHost": {**reset, "filters": ["probe"]},
            "gunicorn.error": {**reset, "level": level},
            "gunicorn.access": {**reset, "level": "INFO"},
            "botocore": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
            "axes": {"level": "WARNING"},  # a line per successful login is noise; lockouts stay
        },
    }
