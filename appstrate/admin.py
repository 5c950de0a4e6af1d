from django.contrib import admin


class ConsoleSite(admin.AdminSite):
    """The operator console: the Django admin under Appstrate's name."""

    site_header = "Appstrate console"
    site_title = "Appstrate"
    index_title = "Workflows, runs and credentials"

    def login(self, request, extra_context=None):
        # Password guessing is throttled per client address (LOGIN_RATE_LIMIT); only attempts
        # (POST) count, so showing the form never locks anyone out.
        from api.ratelimits import check_rate

        if request.method == "POST" and (limited := check_rate(request, "login")):
            return limited
        return super().login(request, extra_context)

    def get_urls(self):
        # The system page (infra.console): tier, adapters, queue, executors, workers, failures.
        from django.urls import path

        from infra.console import system_page

        return [
            path("system/", self.admin_view(lambda r: system_page(r, self)), name="system"),
            *super().get_urls(),
        ]
