"""The account page: make a token (its key shown once), list, revoke one, revoke all; others' tokens untouched."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db
ACCOUNT = reverse("account")


def works(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(reverse("classifier:api:batches")).status_code == 200


def make(client, name, days=30):
    response = client.post(ACCOUNT, {"name": name, "days": days})
    key = response.context["new_key"]["key"] if response.context["new_key"] else None
    return response, key


def test_the_page_needs_a_login(client):
    assert client.get(ACCOUNT).url.startswith(reverse("login"))


def test_a_new_key_is_shown_once_and_works(alice, user):
    response, key = make(alice, "laptop")
    assert response.status_code == 201 and key in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert works(key)
    page = alice.get(ACCOUNT).content.decode()
    assert "laptop" in page and key not in page and key[:15] not in page


def test_tokens_are_listed_with_expiry_and_last_use(alice, user):
    _, key = make(alice, "ci", days=7)
    works(key)
    token = ApiToken.objects.get(user=user)
    page = alice.get(ACCOUNT).content.decode()
    assert token.expiry.strftime("%Y-%m-%d") in page and token.last_used.strftime("%Y-%m-%d %H:%M") in page


def test_a_refused_token_says_why(alice, user, settings):
    make(alice, "ci")
    response, key = make(alice, "ci")
    assert response.status_code == 400 and key is None
    assert "already have a token named" in response.content.decode()
    response, _ = make(alice, "long", days=settings.API_TOKEN_MAX_DAYS + 1)
    assert response.status_code == 400


def test_revoke_one_then_all(alice, user):
    _, laptop = make(alice, "laptop")
    _, ci = make(alice, "ci")
    alice.post(reverse("revoke-token"), {"name": "laptop"})
    assert not works(laptop) and works(ci)
    alice.post(reverse("revoke-all-tokens"))
    assert not works(ci) and not ApiToken.objects.filter(user=user).exists()


def test_revoking_touches_only_ones_own_tokens(alice, bob):
    _, bobs = ApiToken.objects.issue(bob, "laptop")
    alice.post(reverse("revoke-token"), {"name": "laptop"})
    alice.post(reverse("revoke-all-tokens"))
    assert works(bobs)
