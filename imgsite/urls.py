from django.contrib import admin
from django.urls import include, path

from imgsite.health import healthz, healthz_deep

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("healthz/deep", healthz_deep, name="healthz-deep"),
    path("", include("scaling.urls")),  # /metrics; by name, as imgsite imports nothing from scaling
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("classifier.urls")),
]
