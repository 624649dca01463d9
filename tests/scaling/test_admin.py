"""The worker-nodes page: the live queue, the chart of recent passes, failed passes; no inline
script or style, so it works under a strict Content-Security-Policy."""
import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from scaling.models import ScalingEvent


def test_the_fleet_page_draws_the_last_hours_without_inline_script_or_style(admin_client, aws, empty_queues):
    now = timezone.now()
    for minutes, running in ((90, 0), (60, 2), (10, 1)):
        ScalingEvent.objects.create(created_at=now - timedelta(minutes=minutes), backend="local", running=running,
                                    open_images=32, visible=2, target=running, reason="r", action="nothing")
    html = admin_client.get(reverse("admin:scaling_workernode_changelist")).content.decode()
    overview = html[html.index('id="fleet-overview"'):html.index("Recent scaling decisions")]
    assert overview.count("<svg") == 2 and 'class="chart-fleet"' in overview and "<polyline" in overview
    assert "style=" not in overview and "<script" not in overview and "<style" not in overview
    assert re.search(r'<link rel="stylesheet" href="[^"]*scaling/fleet\.css"', html)


def test_failed_and_folded_passes_show_on_the_page_and_in_the_list(admin_client, aws, empty_queues):
    now = timezone.now()
    ScalingEvent.objects.create(created_at=now - timedelta(minutes=5), last_seen_at=now, repeats=20, backend="ec2",
                                reason="holding 0", action="nothing")
    ScalingEvent.objects.create(created_at=now, backend="ec2", reason="pass failed", action="nothing",
                                error="ClientError: Throttling")
    page = admin_client.get(reverse("admin:scaling_workernode_changelist")).content.decode()
    assert "×20 to" in page and 'class="failed"' in page and "ClientError: Throttling" in page
    failed = admin_client.get(reverse("admin:scaling_scalingevent_changelist") + "?failed=yes").content.decode()
    assert "pass failed" in failed and "holding 0" not in failed
