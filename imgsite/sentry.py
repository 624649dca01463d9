"""Error reports to Sentry. imgsite/settings/operations.py imports this module only when SENTRY_DSN is set,
so a deployment without Sentry neither imports nor needs sentry_sdk."""
import math

import sentry_sdk
from sentry_sdk.crons import MonitorStatus, capture_checkin
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration


def start_sentry(dsn, environment, traces_sample_rate=0.0):
    """Report unhandled errors in views and tasks, and ERROR log lines, with no personal data."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        traces_sample_rate=traces_sample_rate or None,  # None: no tracing at all, not "sample none"
        send_default_pii=False,
    )


def check_in(monitor, ok, interval_seconds):
    """A cron monitor check-in for a loop that passes every `interval_seconds`: Sentry warns when
    the loop reports an error or stops reporting for a few minutes."""
    capture_checkin(
        monitor_slug=monitor,
        status=MonitorStatus.OK if ok else MonitorStatus.ERROR,
        monitor_config={
            "schedule": {"type": "interval", "value": max(1, math.ceil(interval_seconds / 60)), "unit": "minute"},
            "checkin_margin": 5,
            "max_runtime": 10,
        },
    )
