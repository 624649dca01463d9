"""API tokens in the admin: who has which, since when, until when, last used; revoking is deleting.
The admin never shows a key, nor the part of it that the database keeps to look tokens up.
Also django-axes' failed-login records, whose one action here declares the permission it needs."""
from axes import admin as axes_admin
from axes.models import AccessAttempt
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


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request, queryset):
        return super().cleanup_expired_attempts(request, queryset)


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdmin)
