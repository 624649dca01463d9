"""API tokens in the admin: who has which, since when, until when, last used; revoking is deleting.
The admin never shows a key, nor the part of it that the database keeps to look tokens up."""
from django.contrib import admin

from accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "created", "expiry", "last_used"]
    list_filter = ["created", "expiry", "last_used"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username"]
    fields = readonly_fields = ["name", "user", "created", "expiry", "last_used"]

    def has_add_permission(self, request):
        return False  # a key must be shown to its owner only: the account page or create_api_token

    def has_change_permission(self, request, obj=None):
        return False
