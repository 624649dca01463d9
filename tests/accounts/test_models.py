"""API tokens: hashed at rest, named, several per user, expiring, with their last use recorded."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, TokenRefused

pytestmark = pytest.mark.django_db


def call_with(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(reverse("classifier:api:batches"))


def test_only_a_hash_of_the_key_is_stored(user):
    token, key = ApiToken.objects.issue(user, "laptop")
    stored = ApiToken.objects.values().get(pk=token.pk)
    assert len(key) == 64
    assert all(key not in str(value) for field, value in stored.items() if field != "token_key")
    assert stored["token_key"] == key[:15]  # knox's lookup prefix: not enough to authenticate
    assert call_with(key).status_code == 200
    assert call_with(stored["digest"]).status_code == 401 and call_with(key[:15]).status_code == 401


def test_a_user_holds_several_named_tokens(user):
    keys = [ApiToken.objects.issue(user, name)[1] for name in ("laptop", "ci", "phone")]
    assert {call_with(key).status_code for key in keys} == {200}
    with pytest.raises(TokenRefused) as refused:
        ApiToken.objects.issue(user, "ci")
    assert refused.value.code == "name_taken"


def test_a_user_holds_at_most_the_configured_number(user, settings):
    settings.API_TOKENS_PER_USER = 2
    ApiToken.objects.issue(user, "a")
    ApiToken.objects.issue(user, "b")
    with pytest.raises(TokenRefused) as refused:
        ApiToken.objects.issue(user, "c")
    assert refused.value.code == "too_many"


def test_expiry_is_bounded(user, settings):
    token, _ = ApiToken.objects.issue(user, "default")
    assert abs(token.expiry - (timezone.now() + timedelta(days=settings.API_TOKEN_DAYS))) < timedelta(minutes=1)
    for days in (0, settings.API_TOKEN_MAX_DAYS + 1):
        with pytest.raises(TokenRefused, match="from 1 to"):
            ApiToken.objects.issue(user, f"bad-{days}", days=days)


def test_an_expired_token_is_refused_and_deleted(user):
    token, key = ApiToken.objects.issue(user, "old", days=1)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert call_with(key).status_code == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_last_use_is_recorded_at_most_once_a_minute(user, django_assert_num_queries):
    token, key = ApiToken.objects.issue(user, "laptop")
    assert token.last_used is None
    call_with(key)
    first = ApiToken.objects.get(pk=token.pk).last_used
    assert first is not None and timezone.now() - first < timedelta(seconds=5)
    call_with(key)
    assert ApiToken.objects.get(pk=token.pk).last_used == first  # no write within the minute
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    call_with(key)
    assert ApiToken.objects.get(pk=token.pk).last_used > first


def test_an_inactive_users_token_is_refused(user):
    _, key = ApiToken.objects.issue(user, "laptop")
    user.is_active = False
    user.save()
    assert call_with(key).status_code == 401


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions; CI runs on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_requests_for_the_same_name_at_once_make_one_token_and_a_readable_refusal(user):
    # Two threads, each with its own connection, asked to issue at the same moment.
    start, outcomes = threading.Barrier(4), []

    def issue():
        start.wait()
        try:
            outcomes.append(ApiToken.objects.issue(user, "laptop")[0].name)
        except TokenRefused as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["laptop", "name_taken", "name_taken", "name_taken"]
