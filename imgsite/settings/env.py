"""Reading the environment: each helper refuses a bad value with a message naming the variable."""
import os

from django.core.exceptions import ImproperlyConfigured


def envstr(name, default=""):
    return os.environ.get(name, default)


def envbool(name, default="False"):
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def envparsed(name, default, parse, kind):
    value = os.environ.get(name, str(default))
    try:
        return parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {kind}") from None


def envint(name, default):
    return envparsed(name, default, int, "an integer")


def envfloat(name, default):
    return envparsed(name, default, float, "a number")


def require(name, value):
    if not value:
        raise ImproperlyConfigured(f"{name} must be set")
    return value
