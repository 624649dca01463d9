from django.apps import AppConfig


class ScalingConfig(AppConfig):
    name = "scaling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from scaling import heartbeat  # noqa: F401  (connects the Celery worker signals)
