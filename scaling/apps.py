from django.apps import AppConfig


class ScalingConfig(AppConfig):
    name = "scaling"
    default_auto_field = "django.db.models.BigAutoField"
