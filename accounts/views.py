"""The account page: API tokens made, listed and revoked."""
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import ApiToken, TokenRefused

LIFETIMES = [7, 30, 90, 365]


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
    tokens = ApiToken.objects.filter(user=request.user)
    tokens.expired(now).delete()
    response = render(request, "accounts/account.html", {
        "tokens": tokens.active(now), "form": form, "new_key": new_key,
        "limit": settings.API_TOKENS_PER_USER,
    }, status=status)
    return response


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
