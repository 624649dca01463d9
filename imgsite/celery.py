"""The standard Celery app: configuration comes from Django settings (CELERY_*)."""
import os

# kombu's SQS consumer needs pycurl, and pycurl must load its libcurl before TensorFlow
# loads an older one into the process ("libcurl link-time version is older than compile-time").
import pycurl  # noqa: F401
from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsite.settings")

app = Celery("imgsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def preload_model():
    """Load the model when a worker process starts, so a missing artifact fails loudly at once."""
    from classifier.inference import get_classifier

    get_classifier()


@signals.worker_process_init.connect
def preload_model_in_child(**kwargs):
    preload_model()


@signals.worker_init.connect
def preload_model_in_worker(sender=None, **kwargs):
    """The solo and threads pools run tasks in this process; prefork children load their own."""
    if "prefork" not in getattr(sender.pool_cls, "__module__", str(sender.pool_cls)):
        preload_model()
