"""The workers' user data renders from settings, and never carries a secret."""
import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from deploy.userdata import render_user_data
from imgsite.aws import queue_url

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/111122223333/imgsite-classify"
DATABASE_URL = "postgres://imgsite:db-password-not-for-user-data@db.internal:5432/imgsite"
SECRET_KEY = "secret-key-not-for-user-data-0123456789-abcdefghijklmnopqrstuvwxyz"


def written_files(text):
    return {item["path"]: item["content"] for item in yaml.safe_load(text)["write_files"]}


def environment(text):
    content = written_files(text)["/etc/imgsite/worker.env"]
    return dict(line.split("=", 1) for line in content.splitlines())


def test_it_writes_the_workers_environment_from_settings(settings):
    settings.IMAGE_BUCKET, settings.CLASSIFIER_MODEL = "pics", "resnet50"
    text = render_user_data(QUEUE_URL)

    assert text.startswith("#cloud-config\n")
    assert environment(text) == {
        "DEBUG": "false",
        "AWS_REGION": settings.AWS_REGION,
        "IMAGE_BUCKET": "pics",
        "CLASSIFY_QUEUE": settings.CLASSIFY_QUEUE,
        "CLASSIFY_QUEUE_URL": QUEUE_URL,
        "DEAD_LETTER_QUEUE": settings.DEAD_LETTER_QUEUE,
        "SQS_VISIBILITY_TIMEOUT": str(settings.SQS_VISIBILITY_TIMEOUT),
        "SQS_WAIT_TIME_SECONDS": str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["wait_time_seconds"]),
        "MAX_RECEIVE_COUNT": str(settings.MAX_RECEIVE_COUNT),
        "TASK_SOFT_TIME_LIMIT": str(settings.TASK_SOFT_TIME_LIMIT),
        "TASK_TIME_LIMIT": str(settings.TASK_TIME_LIMIT),
        "IMAGES_PER_MESSAGE": str(settings.IMAGES_PER_MESSAGE),
        "DISPATCH_WAITING_PER_USER": str(settings.DISPATCH_WAITING_PER_USER),
        "WORKER_CONCURRENCY": str(settings.WORKER_CONCURRENCY),
        "CLASSIFIER_MODEL": "resnet50",
        "CLASSIFIER_RUNTIME": settings.CLASSIFIER_RUNTIME,
        "CLASSIFIER_TOP_K": str(settings.CLASSIFIER_TOP_K),
        "WORKER_HEARTBEAT_SECONDS": str(settings.WORKER_HEARTBEAT_SECONDS),
        "SSM_PARAMETER_PREFIX": settings.SSM_PARAMETER_PREFIX,
        "LOG_LEVEL": settings.LOG_LEVEL,
        "LOG_FORMAT": settings.LOG_FORMAT,
    }
    assert yaml.safe_load(text)["runcmd"][-1] == ["systemctl", "enable", "--now", "imgsite-worker.service"]


def test_the_stop_timeout_outlasts_the_longest_task(settings):
    files = written_files(render_user_data(QUEUE_URL))
    drop_in = files["/etc/systemd/system/imgsite-worker.service.d/stop-timeout.conf"]

    timeout = int(drop_in.split("TimeoutStopSec=")[1])
    assert timeout > settings.TASK_TIME_LIMIT


def test_no_secret_value_appears_in_it(settings, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", DATABASE_URL)
    settings.SECRET_KEY = SECRET_KEY

    text = render_user_data(QUEUE_URL)

    assert "db-password-not-for-user-data" not in text and SECRET_KEY not in text
    assert not {"DATABASE_URL", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY"} & set(environment(text))


def test_a_template_that_embeds_a_secret_is_refused(settings, tmp_path):
    settings.SECRET_KEY = SECRET_KEY
    template = tmp_path / "user-data.tmpl"
    template.write_text(f"#cloud-config\n# key: {SECRET_KEY}\n${{environment}}\n")

    with pytest.raises(ImproperlyConfigured, match="secret"):
        render_user_data(QUEUE_URL, template=template)


def test_an_unknown_placeholder_is_named(tmp_path):
    template = tmp_path / "user-data.tmpl"
    template.write_text("#cloud-config\n${environment}\n${database_password}\n")

    with pytest.raises(ImproperlyConfigured, match="database_password"):
        render_user_data(QUEUE_URL, template=template)


def test_settings_file_takes_the_place_of_the_default_template(settings, tmp_path):
    settings.EC2_USER_DATA_FILE = str(tmp_path / "mine.tmpl")
    (tmp_path / "mine.tmpl").write_text("#cloud-config\n# prefix ${ssm_prefix}, $$HOME stays\n")

    assert render_user_data(QUEUE_URL) == f"#cloud-config\n# prefix {settings.SSM_PARAMETER_PREFIX}, $HOME stays\n"


def test_a_value_that_would_break_the_file_is_refused(settings):
    settings.IMAGE_BUCKET = "pics\nDATABASE_URL=sqlite:///tmp/x"

    with pytest.raises(ImproperlyConfigured, match="IMAGE_BUCKET"):
        render_user_data(QUEUE_URL)


def test_without_a_url_it_asks_sqs_for_the_queue(aws, settings):
    assert environment(render_user_data())["CLASSIFY_QUEUE_URL"] == queue_url(settings.CLASSIFY_QUEUE)
