"""In headless Chromium: upload five files by the file input, straight to the local S3 (no image
through the web server), watch every badge reach its final state without a reload, check labels and
the failure reason, export CSV, keep a screenshot; the uploader's counts, rows and batch list."""
import csv
import re
import zipfile
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from accounts.models import ApiToken
from classifier.models import Batch, Image
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
def upload_files(tmp_path):
    files = {name: photo_jpeg(name.split(".")[0]) for name in ["chelsea.jpg", "coffee.jpg", "astronaut.jpg",
                                                               "rocket.jpg"]}
    files["scan.tiff"] = truncated_tiff()  # passes the header check, fails in the worker
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


class Requests:
    """What the page sends: every POST, to the site or to the bucket, with its body's type and size."""

    def __init__(self, page, site):
        self.site, self.posts = site, []
        page.on("request", self.record)

    def record(self, request):
        if request.method == "POST":
            body = request.post_data_buffer or b""
            self.posts.append((request.url, request.headers.get("content-type", ""), len(body)))

    def to_site(self, path=""):
        return [post for post in self.posts if post[0].startswith(self.site + path)]

    def to_bucket(self):
        return [post for post in self.posts if post[0].startswith(settings.AWS_ENDPOINT_URL)]


def assert_no_image_through_the_site(requests, images):
    """Every image went to the bucket; the site got small JSON requests only, never a form upload."""
    assert len(requests.to_bucket()) == images
    assert all(kind.startswith("multipart/form-data") for _, kind, _ in requests.to_bucket())
    api = requests.to_site("/api/")
    assert api and all(kind == "application/json" and size < 20_000 for _, kind, size in api), api
    assert not [post for post in requests.to_site() if "multipart" in post[1]]


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
        requests = Requests(page, live_server.url)
        page.set_input_files("#files", [str(path) for path in upload_files])
        assert page.locator("#file-list li").count() == 5
        assert page.inner_text("#upload-button") == "Upload 5 files"
        page.click("#upload-button")
        page.wait_for_function("() => document.getElementById('upload-status').textContent.includes('uploaded into')",
                               timeout=60_000)
        assert_no_image_through_the_site(requests, 5)
        assert page.inner_text("#overall-text").startswith("5 of 5 files done")
        page.click("#batch-link")
        page.wait_for_url(re.compile(r".*/batches/\d+/$"), timeout=10_000)

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
        requests = Requests(page, live_server.url)
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

        page.wait_for_function("() => document.getElementById('upload-status').textContent.includes('uploaded into')",
                               timeout=60_000)
        # Its bytes are read by the worker, which fails it with the reason the web tier would give.
        assert rows["fake.jpg"].locator(".file-state").inner_text() == "Uploaded, queued"
        assert rows["photo0.jpg"].locator(".file-state").inner_text() == "Uploaded, queued"
        assert rows["photo2.jpg"].locator("progress").get_attribute("value") == "100"
        starts = [url for url, _, _ in requests.to_site("/api/v1/batches") if url.endswith("/uploads")]
        commits = [url for url, _, _ in requests.to_site("/api/v1/batches") if url.endswith("/commit")]
        assert len(starts) == len(commits) == 2 and re.search(r"/batches/\d+/uploads$", starts[1])  # the first's batch
        assert_no_image_through_the_site(requests, 4)
        assert page.inner_text("#upload-status") == (f"4 files uploaded into batch {Batch.objects.get().pk}; "
                                                     "2 not accepted (see below).")
        batch_url = page.get_attribute("#batch-link", "href")
        page.click("#batch-link")
        page.wait_for_url(f"{live_server.url}{batch_url}")
        assert page.locator(".card.image").count() == 4

        page.goto(f"{live_server.url}/images/?status=queued")
        assert page.locator(".card.image").count() == 4
        page.screenshot(path=ARTIFACTS / "images.png", full_page=True)
    connection.close()


UPLOADED = "() => document.getElementById('upload-status').textContent.includes('uploaded into')"


def test_the_uploader_tells_each_upload_apart_and_each_file_of_a_name_apart(
    live_server, aws, settings, tmp_path, django_user_model, sync_browser_may_use_the_database,
):
    django_user_model.objects.create_user("hana", password=PASSWORD)
    small, large, rocket = photo_jpeg("chelsea", max_side=120), photo_jpeg("coffee", max_side=600), photo_jpeg(
        "rocket", max_side=120)
    settings.QUOTA_BYTES_STORED = len(small) + len(rocket) + 1000  # room for the small ones only
    for folder, data in [("a", small), ("b", large)]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "photo.jpg").write_bytes(data)
    (tmp_path / "rocket.jpg").write_bytes(rocket)
    (tmp_path / "late.jpg").write_bytes(photo_jpeg("astronaut", max_side=100))

    with chromium_page(viewport={"width": 1024, "height": 900}) as page:
        log_in(page, live_server.url, "hana")
        page.wait_for_selector("form#upload-form[data-ready]", state="attached")
        page.evaluate("window.notReloaded = true")
        assert page.locator("#batches .batch-row").count() == 0

        # Two files of one name; the server refuses the second (over the storage quota), on its own row.
        page.set_input_files("#files", [str(tmp_path / "a" / "photo.jpg"), str(tmp_path / "b" / "photo.jpg")])
        page.click("#upload-button")
        page.wait_for_function(UPLOADED, timeout=60_000)
        first = Batch.objects.get().pk
        rows = page.locator("#file-list li")
        assert rows.nth(0).locator(".file-state").inner_text() == "Uploaded, queued"
        assert rows.nth(1).locator(".file-state").inner_text().startswith(
            "Refused: Your images would take more than your storage")
        assert page.inner_text("#upload-status") == f"1 file uploaded into batch {first}; 1 not accepted (see below)."
        assert page.inner_text("#overall-text").startswith("2 of 2 files done")
        assert page.inner_text("#batch-link") == f"Open batch {first}"
        page.wait_for_function("() => document.querySelectorAll('#batches .batch-row').length === 1", timeout=10_000)
        assert page.inner_text("#batches .batch-row a") == f"Batch {first}"  # listed without a reload
        page.screenshot(path=ARTIFACTS / "uploader-first.png", full_page=True)

        # A second upload on the same page starts afresh: its own rows, counts and batch.
        page.set_input_files("#files", [str(tmp_path / "rocket.jpg")])
        assert page.locator("#file-list li").count() == 1 and page.is_hidden("#batch-link")
        assert page.inner_text("#upload-button") == "Upload 1 file"
        page.click("#upload-button")
        page.wait_for_function(UPLOADED, timeout=60_000)
        second = Batch.objects.exclude(pk=first).get().pk
        assert page.inner_text("#upload-status") == f"1 file uploaded into batch {second}."
        assert page.inner_text("#overall-text").startswith("1 of 1 file done")
        assert page.get_attribute("#batch-link", "href") == f"/batches/{second}/"
        page.wait_for_function("() => document.querySelectorAll('#batches .batch-row').length === 2", timeout=10_000)
        assert page.locator("#batches .batch-row a").all_inner_texts() == [f"Batch {second}", f"Batch {first}"]

        # A quota that waiting a little will not cure is said at once, not waited for.
        settings.QUOTA_OPEN_IMAGES = 2
        page.set_input_files("#files", [str(tmp_path / "late.jpg")])
        page.click("#upload-button")
        page.wait_for_function("() => document.getElementById('upload-status').textContent.startsWith('Not uploaded')",
                               timeout=10_000)
        assert page.inner_text("#upload-status") == (
            "Not uploaded: You have the most images waiting or being classified at once (limit 2): upload more once "
            "some have finished.")
        assert page.locator("#file-list li .file-state").inner_text().startswith("Not uploaded: You have the most")
        assert page.evaluate("window.notReloaded") is True
    connection.close()
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["photo.jpg", "rocket.jpg"]
    assert Image.objects.get(original_name="photo.jpg").size == len(small)


def test_an_archive_is_expanded_on_the_server_beside_images_sent_to_storage(
    live_server, aws, tmp_path, django_user_model, sync_browser_may_use_the_database,
):
    django_user_model.objects.create_user("ivan", password=PASSWORD)
    (tmp_path / "single.jpg").write_bytes(photo_jpeg("rocket", max_side=100))
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.writestr("cat.jpg", photo_jpeg("chelsea", max_side=100))
        archive.writestr("coffee.jpg", photo_jpeg("coffee", max_side=100))
        archive.writestr("notes.txt", "not a picture\n" * 20)
    with chromium_page() as page:
        requests = Requests(page, live_server.url)
        log_in(page, live_server.url, "ivan")
        page.wait_for_selector("form#upload-form[data-ready]", state="attached")
        page.set_input_files("#files", [str(tmp_path / "single.jpg"), str(tmp_path / "photos.zip")])
        page.click("#upload-button")
        page.wait_for_function(UPLOADED, timeout=60_000)
        batch = Batch.objects.get().pk
        rows = page.locator("#file-list li .file-state").all_inner_texts()
        assert rows == ["Uploaded, queued", "Uploaded and expanded: 2 images accepted.",
                        "Refused (inside the archive): Not an image: looks like HTML/text."]
        assert page.inner_text("#upload-status") == f"2 files uploaded into batch {batch}; 1 not accepted (see below)."
        forms = [url for url, kind, _ in requests.to_site() if kind.startswith("multipart/form-data")]
        assert forms == [f"{live_server.url}/api/v1/batches/{batch}/images"]  # the archive only, into the batch
        assert len(requests.to_bucket()) == 1
    connection.close()
    assert list(Image.objects.order_by("id").values_list("original_name", flat=True)) == [
        "single.jpg", "cat.jpg", "coffee.jpg"]


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
        page.set_input_files("#files", [str(quoted)])  # through the gallery's uploader
        page.click("#upload-button")
        page.locator("#batch-link").wait_for(state="visible", timeout=60_000)
        page.wait_for_function("() => document.getElementById('upload-status').textContent.includes('uploaded into')",
                               timeout=60_000)
        page.click("#batch-link")
        page.wait_for_url(re.compile(r".*/batches/\d+/$"), timeout=10_000)
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
