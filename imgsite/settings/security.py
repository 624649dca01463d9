"""HTTPS and the browser: TLS behind a load balancer, HTTPS-only cookies and HSTS with DEBUG off,
and the Content-Security-Policy (django-csp)."""
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.aws import AWS_ENDPOINT_URL, AWS_REGION, IMAGE_BUCKET
from imgsite.settings.core import DEBUG
from imgsite.settings.env import envbool, envint, envstr

SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a load balancer that terminates TLS, e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
if envstr("SECURE_PROXY_SSL_HEADER"):
    _header, _, _value = envstr("SECURE_PROXY_SSL_HEADER").partition(",")
    if not (_header.startswith("HTTP_") and _value):
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must look like HTTP_X_FORWARDED_PROTO,https")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "True")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "True")
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "True")

# --- Content-Security-Policy (django-csp): scripts, styles and everything else from this site only. ---
# Presigned image URLs are the exception: img-src allows the bucket's origin, as boto3 builds it
# (the endpoint, path-style, locally; the bucket's virtual-hosted https origin on AWS).


def bucket_origin(bucket, region, endpoint):
    """The scheme://host[:port] of the bucket's presigned URLs."""
    if endpoint:
        return "{0.scheme}://{0.netloc}".format(urlsplit(endpoint))
    return f"https://{bucket}.s3.amazonaws.com" if region == "us-east-1" else \
        f"https://{bucket}.s3.{region}.amazonaws.com"


CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", bucket_origin(IMAGE_BUCKET, AWS_REGION, AWS_ENDPOINT_URL)],
        # The uploader posts originals straight to the bucket (presigned POSTs).
        "connect-src": ["'self'", bucket_origin(IMAGE_BUCKET, AWS_REGION, AWS_ENDPOINT_URL)],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
