"""API tokens: hashed at rest (django-rest-knox), named, expiring, with the time of their last use.

The key is shown once, when it is made; the database keeps its SHA-512 digest and the first
15 characters, which knox uses to find candidate rows. Neither is ever shown again.
"""
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone
from knox.models import AbstractAuthToken, AuthTokenManager

# A token's last use is recorded at most this often, so a busy client costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenRefused(Exception):
    """A token that cannot be made: a machine-readable `code` and a sentence a person can act on."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class ApiTokenQuerySet(models.QuerySet):
    def active(self, now):
        return self.filter(models.Q(expiry__isnull=True) | models.Q(expiry__gt=now))

    def expired(self, now):
        return self.filter(expiry__lte=now)


class ApiTokenManager(AuthTokenManager.from_queryset(ApiTokenQuerySet)):
    def issue(self, user, name, days=None, now=None):
        """Make a token for `user`; returns (token row, key). The key exists only in this answer."""
        now = now or timezone.now()
        days = settings.API_TOKEN_DAYS if days is None else days
        name = name.strip()
        if not name:
            raise TokenRefused("no_name", "Give the token a name, e.g. laptop or CI.")
        if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
            raise TokenRefused("bad_expiry", f"A token lasts from 1 to {settings.API_TOKEN_MAX_DAYS} days.")
        with transaction.atomic():
            # The user's row, locked: two requests at once check and add one after the other.
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            mine = self.filter(user=user)
            mine.expired(now).delete()
            if mine.filter(name=name).exists():
                raise TokenRefused("name_taken",
                                   f"You already have a token named {name!r}: revoke it or pick another name.")
            if mine.count() >= settings.API_TOKENS_PER_USER:
                raise TokenRefused("too_many",
                                   f"You have {settings.API_TOKENS_PER_USER} tokens already: revoke one first.")
            return self.create(user=user, name=name, expiry=timedelta(days=days))


class ApiToken(AbstractAuthToken):
    name = models.CharField(max_length=50, help_text="What the owner calls it, e.g. laptop or CI.")
    last_used = models.DateTimeField(null=True, blank=True,
                                     help_text="When it last authenticated a request (to the minute).")

    objects = ApiTokenManager()

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="apitoken_user_name_uniq")]

    def __str__(self):
        return f"{self.name} ({self.user})"

    def record_use(self, now):
        if self.last_used is None or now - self.last_used >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now
