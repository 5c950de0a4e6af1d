from django.core.management.base import BaseCommand

from runs.roles import create_roles


class Command(BaseCommand):
    help = "Create or update the Viewers, Operators and Credential managers groups."

    def handle(self, *args, **options):
        counts = create_roles()
        return "Roles: " + ", ".join(f"{name} ({n} permissions)" for name, n in counts.items())
