from django.contrib import admin

from classifier.models import Batch, Image, Prediction


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    can_delete = False
    readonly_fields = ["rank", "class_index", "wnid", "label", "score"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["owner__username"]
    date_hierarchy = "created_at"


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "owner", "status", "attempts", "worker", "queued_at", "finished_at"]
    list_filter = ["status", "model_name", "predictions__label"]
    list_select_related = ["owner"]
    search_fields = ["original_name", "sha256", "uuid", "predictions__label"]
    readonly_fields = [f.name for f in Image._meta.fields]
    inlines = [PredictionInline]
    date_hierarchy = "queued_at"


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["image", "rank", "label", "score"]
    list_filter = ["rank", "label"]
    list_select_related = ["image"]
    search_fields = ["label", "wnid"]
