"""The standard Celery app: configuration comes from Django settings (CELERY_*)."""
import os

# kombu's SQS consumer needs pycurl, and pycurl must load its libcurl before TensorFlow
# loads an older one into the process ("libcurl link-time version is older than compile-time").
import pycurl  # noqa: F401
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsite.settings")

app = Celery("imgsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
