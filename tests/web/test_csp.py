"""In headless Chromium, under the Content-Security-Policy: the gallery, the account page, the admin
and the API docs work, presigned S3 thumbnails load, and no page reports a CSP violation."""
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

from tests.browser import chromium_page
from tests.corpus import photo_jpeg
from tests.web.conftest import make_batch

pytestmark = [pytest.mark.browser]
PASSWORD = "a long browser password"
ARTIFACTS = Path(settings.VAR_DIR) / "artifacts"
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI));
"""
# Functions, not strings: Playwright evaluates a string predicate with eval(), which the policy forbids.
LOADED_THUMBNAILS = ("() => [...document.querySelectorAll('img[alt^=Thumbnail]')]"
                     ".filter((img) => img.complete && img.naturalWidth > 0).length === 2")



@pytest.fixture
def frank(django_user_model, aws):
    """A superuser with a batch of three done images whose thumbnails are real JPEGs in S3."""
    user = django_user_model.objects.create_superuser("frank", "frank@example.com", PASSWORD)
    batch = make_batch(user, ["done", "done", "failed"], store=True)
    for image in batch.images.exclude(thumbnail=""):
        default_storage.delete_many([image.thumbnail.name])
        default_storage.save(image.thumbnail.name, ContentFile(photo_jpeg(max_side=64)))
    return batch


class Browser:
    """A page that records CSP violations and console messages about them, page by page."""

    def __init__(self, page, base_url):
        self.page, self.base_url, self.console = page, base_url, []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda message: self.console.append(message.text))

    def visit(self, path):
        response = self.page.goto(f"{self.base_url}{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        return response

    def violations(self):
        reported = self.page.evaluate("window.cspViolations")
        refused = [text for text in self.console if "Content Security Policy" in text or "Refused to" in text]
        self.console.clear()
        return reported + refused


def test_every_page_works_under_the_policy(live_server, frank, tmp_path, sync_browser_may_use_the_database):
    image = frank.images.order_by("id").first()
    (tmp_path / "cat.jpg").write_bytes(photo_jpeg(max_side=64))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(viewport={"width": 1280, "height": 900}) as page:
        browser = Browser(page, live_server.url)
        seen = {}

        browser.visit("/accounts/login/")
        page.fill("#id_username", "frank")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        seen["login, then the uploader"] = browser.violations()
        page.wait_for_selector("form#upload-form[data-ready]", state="attached")
        page.set_input_files("#files", [str(tmp_path / "cat.jpg")])
        assert page.locator("#file-list li").count() == 1  # the uploader's script runs
        seen["choosing a file"] = browser.violations()

        browser.visit(f"/batches/{frank.pk}/")
        page.wait_for_function(LOADED_THUMBNAILS, timeout=15_000)  # presigned S3 thumbnails
        page.locator(".top5 summary").first.click()
        assert page.locator(".top5 meter").first.get_attribute("value") == "0.6200"
        seen["the batch page"] = browser.violations()

        browser.visit("/images/")
        page.wait_for_function(LOADED_THUMBNAILS, timeout=15_000)
        seen["my images"] = browser.violations()

        browser.visit("/accounts/")
        page.fill("#id_name", "laptop")
        page.click("form.new-token button[type=submit]")
        page.wait_for_selector("#new-key")
        assert page.evaluate("document.activeElement.id") == "new-key"  # the page's script selected the key
        seen["the account page"] = browser.violations()

        browser.visit("/api/v1/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        assert page.locator(".opblock").count() >= 7
        page.screenshot(path=ARTIFACTS / "api-docs.png")
        seen["the API docs"] = browser.violations()

        browser.visit("/admin/")
        seen["the admin index"] = browser.violations()
        browser.visit("/admin/classifier/image/")
        page.wait_for_function(LOADED_THUMBNAILS, timeout=15_000)
        page.check("#action-toggle")
        assert "3 of 3 selected" in page.inner_text(".action-counter")  # the admin's own scripts run
        seen["the image list"] = browser.violations()
        browser.visit(f"/admin/classifier/image/{image.pk}/change/")
        seen["an image"] = browser.violations()
        browser.visit("/admin/classifier/batch/")
        seen["the batch list"] = browser.violations()
        browser.visit("/admin/accounts/apitoken/")
        seen["the token list"] = browser.violations()

        # The listener is live: content from elsewhere is refused, and reported.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<img src=\"https://example.invalid/x.png\">')")
        page.wait_for_function("() => window.cspViolations.length > 0", timeout=5_000)
        control = browser.violations()
    connection.close()

    assert {where: found for where, found in seen.items() if found} == {}
    assert any("img-src" in violation for violation in control)
