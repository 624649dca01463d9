"""Login protection: lockout after repeated failures (site and admin), the password validators,
and password reset only where mail can reach people, throttled."""
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"  # the `user` fixture's


def log_in(client, url, username, password, address="203.0.113.7", **headers):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def logged_in(client):
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_25_wrong_passwords_lock_the_right_one_out(client, user, url, settings):
    user.is_staff = True
    user.save()
    for _ in range(25):
        assert log_in(client, url, "alice", "wrong password").status_code in (200, 429)
    response = log_in(client, url, "alice", PASSWORD)
    assert response.status_code == 429 and not logged_in(client)
    assert "Too many failed logins" in response.content.decode()


def test_the_lockout_starts_at_the_limit(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "/accounts/login/", "alice", "wrong password").status_code == 200
    assert log_in(client, "/accounts/login/", "alice", PASSWORD).status_code == 302 and logged_in(client)


def test_the_lockout_holds_one_username_from_one_address(client, user, bob):
    for _ in range(10):
        log_in(client, "/accounts/login/", "alice", "wrong password")
    assert log_in(client, "/accounts/login/", "alice", PASSWORD, address="198.51.100.9").status_code == 302
    client.logout()
    assert log_in(client, "/accounts/login/", "bob", "another horse battery").status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_it(client, user):
    for number in range(10):
        log_in(client, "/accounts/login/", "alice", "wrong password", HTTP_X_FORWARDED_FOR=f"192.0.2.{number}")
    response = log_in(client, "/accounts/login/", "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


def test_behind_a_proxy_the_address_it_saw_counts(client, user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for _ in range(10):
        log_in(client, "/accounts/login/", "alice", "wrong password", address="10.0.0.2",
               HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert log_in(client, "/accounts/login/", "alice", PASSWORD, address="10.0.0.2",
                  HTTP_X_FORWARDED_FOR="203.0.113.51").status_code == 302  # another client behind the same proxy


def test_the_lockout_ends_after_the_cool_off(client, user, settings):
    for _ in range(10):
        log_in(client, "/accounts/login/", "alice", "wrong password")
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert log_in(client, "/accounts/login/", "alice", PASSWORD).status_code == 302


@pytest.mark.parametrize("password, message", [
    ("short1", "too short"),
    ("password123", "too common"),
    ("8461937205", "entirely numeric"),
    ("alice-example", "too similar"),
])
def test_weak_passwords_are_refused(user, password, message):
    user.email = "alice@example.com"
    with pytest.raises(ValidationError, match=message):
        validate_password(password, user)


def test_without_mail_there_is_no_password_reset(client):
    with pytest.raises(NoReverseMatch):
        reverse("password_reset")
    assert client.get("/accounts/password_reset/").status_code == 404
    assert "Forgotten your password" not in client.get(reverse("login")).content.decode()


@pytest.fixture
def with_mail(settings):
    settings.ROOT_URLCONF = "tests.accounts.urls_with_mail"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "imgsite@example.com"


def test_with_mail_the_login_page_offers_a_reset_that_sends_one(client, user, with_mail):
    user.email = "alice@example.com"
    user.save()
    assert reverse("password_reset") in client.get(reverse("login")).content.decode()
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302 and len(mail.outbox) == 1


def test_reset_mails_are_throttled_per_address(client, user, with_mail, settings):
    user.email = "alice@example.com"
    user.save()
    for number in range(settings.PASSWORD_RESET_RATE + 3):
        response = client.post(reverse("password_reset"), {"email": "alice@example.com"},
                               REMOTE_ADDR=f"198.51.100.{number}")
        assert response.status_code == 302  # the same answer, sent or not
    assert len(mail.outbox) == settings.PASSWORD_RESET_RATE


def test_reset_mails_are_throttled_per_client(client, django_user_model, with_mail, settings):
    for number in range(settings.PASSWORD_RESET_RATE + 3):
        django_user_model.objects.create_user(f"user{number}", f"user{number}@example.com", "a long password 1")
        client.post(reverse("password_reset"), {"email": f"user{number}@example.com"})
    assert len(mail.outbox) == settings.PASSWORD_RESET_RATE
