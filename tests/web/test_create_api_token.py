"""manage.py create_api_token USERNAME prints a token that authenticates API calls."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def create_token(*args):
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_a_token_that_the_api_accepts(user):
    token = create_token("alice")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(reverse("classifier:api:batches")).status_code == 200


def test_it_prints_the_same_token_until_rotated(user):
    first = create_token("alice")
    assert create_token("alice") == first
    assert create_token("alice", "--rotate") != first


def test_it_names_a_missing_user():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        create_token("nobody")
