"""Conventions shared by every API view, named in settings.REST_FRAMEWORK: pagination,
per-user throttling and the error format. Kept apart from classifier.api because DRF
imports these while its own APIView class is being defined."""
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import exceptions, status, throttling
from rest_framework.pagination import PageNumberPagination

TOKEN_HINT = ("Send your API token as 'Authorization: Token <key>' (make one on your account page, /accounts/, "
              "or with manage.py create_api_token).")


class Pagination(PageNumberPagination):
    """Page numbers; a malformed page or page_size is a 400 that says so, not silently ignored."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    invalid_page_message = "Page {page_number} does not exist: {message}"

    def get_page_size(self, request):
        return self.whole_number(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_page_number(self, request, paginator):
        return self.whole_number(request, self.page_query_param, 1)

    def whole_number(self, request, name, default, maximum=None):
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or (maximum and int(raw) > maximum):
            limit = f" to {maximum}" if maximum else " up"
            raise exceptions.ValidationError({name: [f"Use a whole number from 1{limit}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


class UserRateThrottle(throttling.UserRateThrottle):
    """DRF's per-user throttle, with the rate read from settings.API_RATE_LIMIT on each request."""

    def get_rate(self):
        return settings.API_RATE_LIMIT


class UploadRateThrottle(UserRateThrottle):
    """Upload requests per user (settings.UPLOAD_RATE_LIMIT), counted apart from the others, for
    the API and the gallery's form alike."""

    scope = "upload"

    def get_rate(self):
        return settings.UPLOAD_RATE_LIMIT


class UploadsThrottled(exceptions.Throttled):
    """Over UPLOAD_RATE_LIMIT rather than API_RATE_LIMIT."""


def upload_wait(request):
    """0 if this user may upload now (and counts this request), else the seconds to wait."""
    throttle = UploadRateThrottle()
    if throttle.allow_request(request, None):
        return 0
    return max(1, math.ceil(throttle.wait() or 1))


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def exception_handler(exc, context):
    """DRF's handler, with messages a person can act on and a 413 for Django's body limits."""
    if isinstance(exc, (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig)):
        exc = PayloadTooLarge(f"Too many files or fields in one request (at most {settings.MAX_FILES_PER_REQUEST} "
                              "files): send them in several requests, or as a .zip.")
    elif isinstance(exc, exceptions.NotAuthenticated):
        exc.detail = f"{exc.detail} {TOKEN_HINT}"
    elif isinstance(exc, UploadsThrottled):
        exc.detail = f"Too many uploads (limit {settings.UPLOAD_RATE_LIMIT} per user). Retry in {exc.wait} s."
    elif isinstance(exc, exceptions.Throttled):
        exc.detail = f"Too many requests (limit {settings.API_RATE_LIMIT} per user). Retry in {exc.wait} s."
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        exc.detail = f"{exc.detail} Send multipart/form-data, with each file in a field named 'images'."
    elif isinstance(exc, exceptions.ValidationError):
        exc = exceptions.ValidationError({"detail": "The request is invalid: see errors.", "errors": exc.detail})
    from rest_framework.views import exception_handler as drf_exception_handler

    return drf_exception_handler(exc, context)
