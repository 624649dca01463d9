"""The worker-nodes page in headless Chromium at a phone's width: no table is wider than the
screen, every decision's values keep their labels, and a screenshot is kept."""
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from scaling.models import ScalingEvent
from tests.browser import chromium_page

pytestmark = [pytest.mark.browser]
ARTIFACTS = Path(settings.VAR_DIR) / "artifacts"
PHONE = {"width": 390, "height": 844}
REASON = ("12 waiting + 3 in flight messages, 1.01 s each per slot; holding 1 (uploads every ≤23 s, "
          "30 images/min → floor 1)")


@pytest.mark.parametrize("viewport, name", [(PHONE, "admin-worker-nodes-phone"),
                                            ({"width": 1280, "height": 900}, "admin-worker-nodes")])
def test_the_fleet_page_fits_the_screen(live_server, admin_user, aws, empty_queues, sync_browser_may_use_the_database,
                                        viewport, name):
    now = timezone.now()
    for minutes, running in ((50, 0), (30, 2), (5, 1)):
        ScalingEvent.objects.create(created_at=now - timedelta(minutes=minutes), last_seen_at=now, repeats=12,
                                    backend="ec2", running=running, visible=12, in_flight=3, open_images=240,
                                    target=running, reason=REASON, action="launch 2: i-0a1b2c3d4e5f6a7b8")
    with chromium_page(viewport=viewport) as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/scaling/workernode/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "password")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/scaling/workernode/")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        page_width = page.evaluate("() => document.documentElement.scrollWidth")
        reasons = page.evaluate("() => [...document.querySelectorAll('#fleet-overview td.reason')]"
                                ".map((cell) => cell.getBoundingClientRect().width)")
        labels = page.evaluate("() => [...document.querySelectorAll('#fleet-overview .fleet-table td')]"
                               ".map((cell) => getComputedStyle(cell, '::before').content)")
    assert page_width <= viewport["width"]  # nothing wider than the screen
    assert len(reasons) == 3 and min(reasons) >= 200  # the reasons read as lines, not a column of syllables
    if viewport is PHONE:
        assert '"Reason"' in labels and '"Workers alive"' in labels
    else:
        assert set(labels) == {"none"}  # a table with its header row
