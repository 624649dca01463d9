"""CSRF protection is on for the forms: a post without the token is refused."""
import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [reverse("classifier:upload"), reverse("logout")])
def test_a_form_post_without_the_csrf_token_is_refused(user, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(url).status_code == 403


def test_a_form_post_with_the_csrf_token_goes_through(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = client.get(reverse("classifier:batches")).context["csrf_token"]
    response = client.post(reverse("classifier:upload"), {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302  # "Choose at least one image" and back to the form
