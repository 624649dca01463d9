"""The account page (API tokens: make, list, revoke) and a throttled password reset."""
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import ApiToken, TokenRefused

LIFETIMES = [7, 30, 90, 365]


def client_ip(request):
    """The client's address, for lockouts and throttles. X-Forwarded-For is trusted only as far as
    REST_FRAMEWORK["NUM_PROXIES"] proxies of our own appended to it, as DRF's throttle trusts it;
    unset means none, so a client cannot pick a fresh address per guess."""
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR", "")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=50, help_text="e.g. laptop or CI")
    days = forms.TypedChoiceField(label="Expires after", coerce=int)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lifetimes = {*LIFETIMES, settings.API_TOKEN_DAYS}
        choices = sorted(days for days in lifetimes if days <= settings.API_TOKEN_MAX_DAYS)
        self.fields["days"].choices = [(days, f"{days} days") for days in choices]
        self.fields["days"].initial = settings.API_TOKEN_DAYS


def account_page(request, form, new_key=None, status=200):
    now = timezone.now()
    return render(request, "accounts/account.html", {
        "tokens": ApiToken.objects.filter(user=request.user).active(now), "form": form, "new_key": new_key,
        "limit": settings.API_TOKENS_PER_USER,
    }, status=status)


@never_cache
@login_required
def account(request):
    """The user's API tokens; a new token's key is shown in the answer to its POST, and never again."""
    if request.method != "POST":
        return account_page(request, TokenForm())
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token, key = ApiToken.objects.issue(request.user, form.cleaned_data["name"], form.cleaned_data["days"])
        except TokenRefused as refused:
            form.add_error("name" if refused.code in ("no_name", "name_taken") else None, str(refused))
        else:
            return account_page(request, TokenForm(), new_key={"name": token.name, "key": key,
                                                               "expiry": token.expiry}, status=201)
    return account_page(request, form, status=400)


@login_required
@require_POST
def revoke_token(request):
    deleted, _ = ApiToken.objects.filter(user=request.user, name=request.POST.get("name", "")).delete()
    if deleted:
        messages.success(request, f"Revoked the token {request.POST['name']!r}: it no longer works.")
    else:
        messages.error(request, "No such token: it may have expired or been revoked already.")
    return redirect("account")


@login_required
@require_POST
def revoke_all_tokens(request):
    deleted, _ = ApiToken.objects.filter(user=request.user).delete()
    messages.success(request, f"Revoked all {deleted} of your tokens." if deleted else "You had no tokens.")
    return redirect("account")


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset form, answering at most PASSWORD_RESET_RATE requests an hour per client and
    per address; a refused request looks like an accepted one, so it tells nobody which addresses exist."""

    def form_valid(self, form):
        keys = [f"password-reset:ip:{client_ip(self.request)}",
                f"password-reset:email:{form.cleaned_data['email'].strip().lower()}"]
        if any(over_limit(key, settings.PASSWORD_RESET_RATE, 3600) for key in keys):
            return redirect(self.get_success_url())
        return super().form_valid(form)


def over_limit(key, limit, seconds):
    """Count one more request under `key` in the cache; True once there were `limit` already."""
    cache.add(key, 0, seconds)
    try:
        return cache.incr(key) > limit
    except ValueError:  # the key expired between add and incr
        cache.set(key, 1, seconds)
        return False
