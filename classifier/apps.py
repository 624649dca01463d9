from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_delete


class ClassifierConfig(AppConfig):
    name = "classifier"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from classifier.orphans import delete_files_of_user

        pre_delete.connect(delete_files_of_user, sender=settings.AUTH_USER_MODEL,
                           dispatch_uid="classifier.delete_files_of_user")
