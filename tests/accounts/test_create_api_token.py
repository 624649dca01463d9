"""manage.py create_api_token USERNAME prints a token, once, that authenticates API calls."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def command(*args):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def answers(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(reverse("classifier:api:batches")).status_code


def test_it_prints_a_token_that_the_api_accepts(user):
    assert answers(command("alice")) == 200


def test_the_key_is_stored_only_as_a_hash(user):
    key = command("alice", "--name", "ci")
    token = ApiToken.objects.get(user=user, name="ci")
    assert key not in token.digest and len(token.digest) == 128
    assert not ApiToken.objects.filter(digest=key).exists()


def test_a_second_token_of_the_same_name_needs_rotate(user):
    first = command("alice")
    with pytest.raises(CommandError, match="already have a token named 'cli'"):
        command("alice")
    second = command("alice", "--rotate")
    assert second != first and answers(second) == 200 and answers(first) == 401


def test_it_lists_and_revokes_all(user):
    laptop, ci = command("alice", "--name", "laptop"), command("alice", "--name", "ci", "--days", "7")
    listing = command("alice", "--list")
    assert "laptop" in listing and "ci" in listing and "last used never" in listing
    assert laptop not in listing and ci not in listing
    command("alice", "--revoke-all")
    assert answers(laptop) == answers(ci) == 401


def test_it_names_a_missing_user():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        command("nobody")
