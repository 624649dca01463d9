from django.apps import AppConfig


class DeployConfig(AppConfig):
    """Provisioning AWS for a deployment, and running the whole system on one machine."""

    name = "deploy"
