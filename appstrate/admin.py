from django.contrib import admin


class ConsoleSite(admin.AdminSite):
    """The operator console: the Django admin under Appstrate's name."""

    site_header = "Appstrate console"
    site_title = "Appstrate"
    index_title = "Workflows, runs and credentials"
