"""Make, list and revoke a user's API tokens: `manage.py create_api_token alice --name ci`."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import ApiToken, TokenRefused


class Command(BaseCommand):
    help = ("Print a new API token for the user (shown once; only its hash is stored). "
            "--rotate replaces the token of that name; --list and --revoke-all manage the others.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="The token's name, unique per user (default: cli).")
        parser.add_argument("--days", type=int, default=settings.API_TOKEN_DAYS,
                            help=f"Days until it expires (default: {settings.API_TOKEN_DAYS}).")
        parser.add_argument("--rotate", action="store_true", help="Revoke the user's token of this name first.")
        parser.add_argument("--list", dest="list_tokens", action="store_true",
                            help="List the user's tokens instead; make none.")
        parser.add_argument("--revoke-all", action="store_true", help="Revoke every token of the user; make none.")

    def handle(self, username, name, days, rotate, list_tokens, revoke_all, **options):
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}; create one with createsuperuser or the admin.") from None
        tokens = ApiToken.objects.filter(user=user)
        if list_tokens:
            for token in tokens.active(timezone.now()):
                used = token.last_used.isoformat(timespec="minutes") if token.last_used else "never"
                self.stdout.write(f"{token.name}\tcreated {token.created:%Y-%m-%d}\t"
                                  f"expires {token.expiry:%Y-%m-%d}\tlast used {used}")
            return
        if revoke_all:
            deleted, _ = tokens.delete()
            self.stderr.write(f"revoked {deleted} token(s) of {username}")
            return
        if rotate:
            tokens.filter(name=name).delete()
        try:
            _, key = ApiToken.objects.issue(user, name, days)
        except TokenRefused as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(key)
