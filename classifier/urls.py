from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from classifier import api, exports, views

api_patterns = [
    path("batches", api.BatchList.as_view(), name="batches"),
    path("batches/<int:pk>", api.BatchDetail.as_view(), name="batch"),
    path("batches/<int:pk>/images", api.BatchImages.as_view(), name="batch-images"),
    path("batches/uploads", api.NewBatchUploads.as_view(), name="uploads"),
    path("batches/<int:pk>/uploads", api.BatchUploads.as_view(), name="batch-uploads"),
    path("batches/<int:pk>/commit", api.BatchCommit.as_view(), name="batch-commit"),
    path("batches/<int:pk>/retry", api.BatchRetry.as_view(), name="batch-retry"),
    path("images", api.ImageList.as_view(), name="images"),
    path("images/<uuid:id>", api.ImageDetail.as_view(), name="image"),
    path("images/<uuid:id>/urls", api.ImageUrls.as_view(), name="image-urls"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own, not inline (CSP).
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="classifier:api:schema"), name="docs"),
    re_path(r"", api.no_such_endpoint),  # JSON, not the HTML 404 page, for any other path or malformed id
]

app_name = "classifier"
urlpatterns = [
    path("", views.batches, name="batches"),
    path("upload/", views.upload, name="upload"),
    path("images/", views.images, name="images"),
    path("images/<uuid:uuid>/", views.image, name="image"),
    path("images/<uuid:uuid>/delete/", views.delete_image, name="delete-image"),
    path("batches/<int:pk>/", views.batch, name="batch"),
    path("batches/<int:pk>/status.json", views.batch_status, name="batch-status"),
    path("batches/<int:pk>/retry/", views.retry_batch, name="retry-batch"),
    path("batches/<int:pk>/delete/", views.delete_batch, name="delete-batch"),
    path("batches/<int:pk>/export.csv", exports.batch_csv, name="export-csv"),
    path("batches/<int:pk>/export.json", exports.batch_json, name="export-json"),
    path("api/v1/", include((api_patterns, "api"))),
]
