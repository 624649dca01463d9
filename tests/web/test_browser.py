"""In headless Chromium: upload five files by the file input, watch every badge reach its final
state without a reload, check labels and the failure reason, export CSV, keep a screenshot."""
import csv
import re
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from accounts.models import ApiToken
from classifier.models import Image
from tests import corpus
from tests.browser import chromium_page
from tests.classifier.conftest import model_dir  # noqa: F401  (the workers need the built model)
from tests.corpus import photo_jpeg, truncated_tiff

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
# wait_for_function gets functions, not strings: Playwright eval()s a string, which the CSP forbids.
ARTIFACTS = Path(settings.VAR_DIR) / "artifacts"
PASSWORD = "a long browser password"
# Accepted top-1 classes by WordNet id (tests/corpus.py), keyed by the uploaded file's name.
ACCEPTED = {f"{name}.jpg": wnids for name, wnids in corpus.ACCEPTED.items()}
FINAL = "document.querySelectorAll('.card.image[data-status=done], .card.image[data-status=failed]').length"
WATCH_STATUSES = """() => {
  window.statusChanges = [];
  new MutationObserver((records) => records.forEach((record) => window.statusChanges.push(
    record.target.id + ':' + record.target.dataset.status))
  ).observe(document.getElementById('cards'), {attributes: true, attributeFilter: ['data-status'], subtree: true});
}"""


@pytest.fixture
def sync_browser_may_use_the_database(monkeypatch):
    """Playwright's sync API runs an event loop in this thread; Django must still allow ORM calls."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def upload_files(tmp_path):
    files = {name: photo_jpeg(name.split(".")[0]) for name in ["chelsea.jpg", "coffee.jpg", "astronaut.jpg",
                                                               "rocket.jpg"]}
    files["scan.tiff"] = truncated_tiff()  # passes the header check, fails in the worker
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


def log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_a_user_uploads_five_files_and_watches_them_finish(
    live_server, workers, empty_queues, model_dir, upload_files, django_user_model,  # noqa: F811
    sync_browser_may_use_the_database,
):
    django_user_model.objects.create_user("carol", password=PASSWORD)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(accept_downloads=True, viewport={"width": 1280, "height": 900}) as page:
        log_in(page, live_server.url, "carol")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"  # CSS


        page.wait_for_selector("form#upload-form[data-ready]", state="attached")
        page.set_input_files("#files", [str(path) for path in upload_files])
        assert page.locator("#file-list li").count() == 5
        assert page.inner_text("#upload-button") == "Upload 5 files"
        page.click("#upload-button")
        page.wait_for_url(re.compile(r".*/batches/\d+/$"), timeout=60_000)

        # Every image is still queued: no worker runs yet. Start one now, and watch.
        assert page.locator(".card.image[data-status=queued]").count() == 5
        page.evaluate("window.notReloaded = true")
        page.evaluate(WATCH_STATUSES)
        workers("browser-1")
        page.wait_for_function(f"() => {FINAL} === 5", timeout=240_000, polling=500)

        assert page.evaluate("window.notReloaded") is True
        changes = page.evaluate("window.statusChanges")
        assert len([change for change in changes if change.endswith((":done", ":failed"))]) >= 5
        cards = {page.locator(".card.image .name").nth(n).inner_text(): page.locator(".card.image").nth(n)
                 for n in range(5)}
        top = {image.original_name: image.top_prediction for image in Image.objects.prefetch_related("predictions")}
        # Inside Playwright's event loop, Django keeps a separate connection: close it here, or it
        # outlives the test and blocks the test database's teardown on PostgreSQL.
        connection.close()
        for name, accepted in ACCEPTED.items():
            assert top[name].wnid in accepted, (name, top[name])
        for name in [*ACCEPTED, "astronaut.jpg"]:
            assert cards[name].locator(".label strong").inner_text() == top[name].label
            assert cards[name].locator(".label .score").inner_text() == f"{round(top[name].score * 100)}%"
        broken = cards["scan.tiff"]
        assert broken.locator(".badge").inner_text() == "Failed"
        assert broken.locator(".error").inner_text() == "The image is truncated or corrupt."
        assert page.inner_text("[data-count=done]") == "4" and page.inner_text("[data-count=failed]") == "1"
        assert page.inner_text("#live") == "5 of 5 finished, 1 failed"
        page.wait_for_function("() => [...document.querySelectorAll('.card.image img')].filter("
                               "(img) => img.complete && img.naturalWidth > 0).length === 4", timeout=30_000)
        assert page.locator("#retry-form").is_visible()

        cards["chelsea.jpg"].locator(".top5 summary").click()
        assert cards["chelsea.jpg"].locator(".top5 li").count() == 5
        page.screenshot(path=ARTIFACTS / "batch.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=ARTIFACTS / "batch-phone.png", full_page=True)

        with page.expect_download() as download:
            page.click("text=Export CSV")
        rows = list(csv.DictReader(open(download.value.path(), newline="")))

    assert [row["name"] for row in rows] == [path.name for path in upload_files]
    by_name = {row["name"]: row for row in rows}
    for name in [*ACCEPTED, "astronaut.jpg"]:
        assert by_name[name]["label"] == top[name].label
        assert float(by_name[name]["score"]) == pytest.approx(top[name].score, abs=1e-4)
        assert by_name[name]["label_5"] and by_name[name]["status"] == "done"
    assert by_name["scan.tiff"]["status"] == "failed" and by_name["scan.tiff"]["label"] == ""
    assert by_name["scan.tiff"]["error"] == "The image is truncated or corrupt."


def test_the_uploader_refuses_wrong_files_and_sends_the_rest_in_several_requests(
    live_server, aws, settings, tmp_path, django_user_model, sync_browser_may_use_the_database,
):
    settings.UPLOAD_REQUEST_FILES = 2
    django_user_model.objects.create_user("dave", password=PASSWORD)
    files = {f"photo{n}.jpg": photo_jpeg(name, max_side=200) for n, name in enumerate(["chelsea", "coffee", "rocket"])}
    files.update({"notes.txt": b"not a picture\n", "empty.jpg": b"", "fake.jpg": b"<html>hello</html>\n" * 20})
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with chromium_page(viewport={"width": 1024, "height": 900}) as page:
        posts = []
        page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
        log_in(page, live_server.url, "dave")
        page.wait_for_selector("form#upload-form[data-ready]", state="attached")
        page.set_input_files("#files", [str(tmp_path / name) for name in files])
        rows = {page.locator("#file-list .file-name").nth(n).inner_text(): page.locator("#file-list li").nth(n)
                for n in range(len(files))}
        assert rows["notes.txt"].locator(".file-state").inner_text().startswith("Not sent: Not an image")
        assert rows["empty.jpg"].locator(".file-state").inner_text() == "Not sent: The file is empty."
        page.click("#upload-button")
        page.locator("#batch-link").wait_for(state="visible", timeout=60_000)
        page.screenshot(path=ARTIFACTS / "upload.png", full_page=True)

        assert rows["fake.jpg"].locator(".file-state").inner_text() == "Refused: Not an image: looks like HTML/text."
        assert rows["photo0.jpg"].locator(".file-state").inner_text() == "Uploaded, queued"
        assert rows["photo2.jpg"].locator("progress").get_attribute("value") == "100"
        uploads = [url for url in posts if "/api/v1/batches" in url]
        assert len(uploads) == 2 and uploads[1].endswith("/images")  # the second joins the first's batch
        batch_url = page.get_attribute("#batch-link", "href")
        page.click("#batch-link")
        page.wait_for_url(f"{live_server.url}{batch_url}")
        assert page.locator(".card.image").count() == 3

        page.goto(f"{live_server.url}/images/?status=queued")
        assert page.locator(".card.image").count() == 3
        page.screenshot(path=ARTIFACTS / "images.png", full_page=True)


def test_expired_thumbnails_are_refreshed_together_and_only_those(
    live_server, aws, django_user_model, sync_browser_may_use_the_database,
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tests.web.conftest import make_batch

    dora = django_user_model.objects.create_user("dora", password=PASSWORD)
    batch = make_batch(dora, ["done", "done", "done"], store=True)
    for image in batch.images.all():
        default_storage.save(image.thumbnail.name, ContentFile(photo_jpeg(max_side=64)))
    failed_once, status_queries = set(), []

    def expire_first_load(route):
        path = route.request.url.split("?")[0]
        if path in failed_once:
            return route.continue_()
        failed_once.add(path)
        return route.abort()

    with chromium_page() as page:
        page.route("**/thumbnail.jpg*", expire_first_load)
        page.on("request", lambda request: "status.json" in request.url and status_queries.append(request.url))
        log_in(page, live_server.url, "dora")
        page.goto(f"{live_server.url}/batches/{batch.pk}/")
        page.wait_for_function("() => [...document.querySelectorAll('.card.image img')].length === 3 && "
                               "[...document.querySelectorAll('.card.image img')].every((img) => img.naturalWidth > 0)",
                               timeout=15000)
    assert len(failed_once) == 3
    refreshes = [query for query in status_queries if "ids=" in query]  # a finished batch also polls, slowly
    assert len(refreshes) == 1
    assert all(str(image.uuid) in refreshes[0] for image in batch.images.all())


def api_upload(base_url, user, batch, files):
    """Upload into `batch` as a program would, over HTTP (requests escapes quotes in names as browsers do)."""
    _, token = ApiToken.objects.issue(user, "browser")
    response = requests.post(f"{base_url}/api/v1/batches/{batch}/images", headers={"Authorization": f"Token {token}"},
                             files=[("images", (name, data, "image/jpeg")) for name, data in files.items()])
    assert response.status_code == 201, response.text


def test_images_added_after_the_page_loaded_get_cards_and_names_keep_their_quotes(
    live_server, aws, tmp_path, django_user_model, sync_browser_may_use_the_database,
):
    erin = django_user_model.objects.create_user("erin", password=PASSWORD)
    quoted = tmp_path / 'a "quoted" name.jpg'
    quoted.write_bytes(photo_jpeg("coffee", max_side=120))
    with chromium_page(viewport={"width": 1280, "height": 900}) as page:
        log_in(page, live_server.url, "erin")
        page.wait_for_selector("form#upload-form[data-ready]", state="attached")
        page.set_input_files("#files", [str(quoted)])  # through the gallery's uploader (FormData)
        page.click("#upload-button")
        page.wait_for_url(re.compile(r".*/batches/\d+/$"), timeout=60_000)
        assert page.inner_text(".card.image .name") == 'a "quoted" name.jpg'
        batch = int(page.url.rstrip("/").rsplit("/", 1)[1])
        page.evaluate("window.notReloaded = true")

        # A second upload into the batch, as a long upload's later parts arrive: the page adds cards.
        api_upload(live_server.url, erin, batch, {'second "part".jpg': photo_jpeg("rocket", max_side=120),
                                                  "third.jpg": photo_jpeg("astronaut", max_side=120)})
        page.wait_for_function("() => document.querySelectorAll('.card.image').length === 3", timeout=40_000,
                               polling=500)
        assert page.evaluate("window.notReloaded") is True
        names = page.locator(".card.image .name").all_inner_texts()
        assert names == ['a "quoted" name.jpg', 'second "part".jpg', "third.jpg"]  # upload order
        assert page.inner_text("[data-count=total]") == "3" and page.inner_text("#total") == "3 images"
    connection.close()
    assert sorted(Image.objects.values_list("original_name", flat=True)) == [
        'a "quoted" name.jpg', 'second "part".jpg', "third.jpg"]


def test_a_finished_batch_still_shows_images_uploaded_into_it_later(
    live_server, aws, django_user_model, sync_browser_may_use_the_database,
):
    from tests.web.conftest import make_batch

    finn = django_user_model.objects.create_user("finn", password=PASSWORD)
    batch = make_batch(finn, ["done", "failed"], store=True)
    with chromium_page() as page:
        log_in(page, live_server.url, "finn")
        page.goto(f"{live_server.url}/batches/{batch.pk}/")
        assert page.inner_text("#live") == "2 of 2 finished, 1 failed"
        api_upload(live_server.url, finn, batch.pk, {"late.jpg": photo_jpeg("rocket", max_side=120)})
        page.wait_for_function("() => document.querySelectorAll('.card.image').length === 3", timeout=60_000,
                               polling=500)
        assert page.inner_text("#live") == "2 of 3 finished, 1 failed"
        assert page.locator(".card.image").nth(2).get_attribute("data-status") == "queued"
    connection.close()


def gallery_of(user, count):
    """A batch of `count` images (a third done with real categories, some unsure, some failed), whose
    originals and thumbnails are a few stored photos shared between rows."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from classifier.labels import categories, imagenet_labels
    from classifier.models import Batch, Prediction

    photos = ["chelsea", "coffee", "rocket", "astronaut"]
    stored = {name: (default_storage.save(f"images/gallery/{name}.jpg", ContentFile(photo_jpeg(name))),
                     default_storage.save(f"images/gallery/{name}-thumb.jpg", ContentFile(photo_jpeg(name, 256))))
              for name in photos}
    tops = {"chelsea": [281, 282, 285, 287, 728], "coffee": [967, 968, 504, 925, 809],
            "rocket": [657, 744, 812, 908, 403], "astronaut": [812, 657, 517, 404, 834]}
    batch = Batch.objects.create(owner=user)
    now = timezone.now()
    images = []
    for n in range(count):
        name = photos[n % 4]
        status = "failed" if n % 17 == 5 else "queued" if n % 23 == 7 else "done"
        images.append(Image(owner=user, batch=batch, original_name=f"{name}-{n:04}.jpg", size=40_000, sha256="0" * 64,
                            content_type="image/jpeg", width=451, height=300, status=status, file=stored[name][0],
                            thumbnail=stored[name][1] if status == "done" else "", queued_at=now, worker="w:1",
                            started_at=now if status != "queued" else None,
                            finished_at=now if status != "queued" else None, model_name="efficientnet_lite0",
                            error="The image is truncated or corrupt." if status == "failed" else ""))
    images = Image.objects.bulk_create(images)
    scores = [(0.81, 0.1, 0.04, 0.02, 0.01), (0.12, 0.09, 0.08, 0.05, 0.04)]
    Prediction.objects.bulk_create(
        Prediction(image=image, rank=rank, class_index=index, wnid=imagenet_labels()[index][0],
                   label=imagenet_labels()[index][1], score=scores[n % 5 == 0][rank - 1], **categories(index))
        for n, image in enumerate(images) if image.status == "done"
        for rank, index in enumerate(tops[image.original_name.split("-")[0]], start=1))
    return batch


def test_a_batch_of_600_images_pages_filters_sorts_and_opens_an_image(
    live_server, aws, django_user_model, sync_browser_may_use_the_database,
):
    gina = django_user_model.objects.create_user("gina", password=PASSWORD)
    batch = gallery_of(gina, 600)
    failed = batch.images.filter(status="failed").count()
    cats = batch.images.filter(status="done", original_name__startswith="chelsea").count()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(viewport={"width": 1280, "height": 900}) as page:
        log_in(page, live_server.url, "gina")
        page.goto(f"{live_server.url}/batches/{batch.pk}/")
        assert page.locator(".card.image").count() == 100
        assert page.inner_text("#showing") == "Showing 1–100 of 600"
        page.wait_for_function("() => [...document.querySelectorAll('.card.image img')].slice(0, 8).every("
                               "(img) => img.complete && img.naturalWidth > 0)", timeout=30_000)
        page.locator(".card.image .top5").nth(0).locator("summary").click()
        page.screenshot(path=ARTIFACTS / "batch-600.png", full_page=True)
        page.screenshot(path=ARTIFACTS / "batch-600-top.png")

        page.click('a[data-filter="failed"]')
        page.wait_for_url(re.compile(r".*\?status=failed$"))
        assert page.locator(".card.image").count() == failed
        assert set(page.locator(".card.image .badge").all_inner_texts()) == {"Failed"}

        page.click('a[data-filter=""]')
        page.select_option("#sort", "unsure")  # submits itself
        page.wait_for_url(re.compile(r".*sort=unsure"))
        assert page.locator(".card.image .label.unsure").count() == 100  # the guesses come first
        page.locator('[data-pager] a[data-to="next"]').first.click()
        page.wait_for_url(re.compile(r".*sort=unsure&page=2"))
        assert "Page 2 of 6" in page.inner_text("[data-pager]")

        page.goto(f"{live_server.url}/batches/{batch.pk}/")
        page.locator(".card.image a.thumb").first.click()  # a thumbnail opens the image page
        page.wait_for_url(re.compile(r".*/images/[0-9a-f-]+/$"))
        page.wait_for_function("() => document.getElementById('original').naturalWidth === 451", timeout=30_000)
        assert page.locator(".predictions li").count() == 5
        assert "domestic cat › cat" in page.inner_text(".predictions")
        assert page.locator("#next-image").is_visible() and not page.locator("#previous-image").count()
        page.screenshot(path=ARTIFACTS / "image-detail.png", full_page=True)
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.querySelector('.image-name').textContent === 'coffee-0001.jpg'")
        page.screenshot(path=ARTIFACTS / "image-detail-coffee.png", full_page=True)
        page.goto(f"{live_server.url}/images/?q=cat")
        assert page.inner_text(".result-count").startswith(f"{cats} images matching “cat”")
        page.screenshot(path=ARTIFACTS / "search-cat.png")
    connection.close()
