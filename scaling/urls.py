from django.urls import path

from scaling.metrics import metrics

urlpatterns = [
    path("metrics", metrics, name="metrics"),
]
