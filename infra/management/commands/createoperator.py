import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the operator account 'operator' with a random password when no superuser exists, "
        "and print its login. The password is kept in the data directory for local use only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator", help="Login name to create.")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        login_file = settings.DATA_DIR / "operator-login.txt"
        if User.objects.filter(is_superuser=True).exists():
            if login_file.exists():
                return f"Operator login: {login_file.read_text().strip()}"
            return "An operator account exists already; reset it with manage.py changepassword."
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        login_file.write_text(f"{username} / {password}\n")
        login_file.chmod(0o600)
        return f"Operator login: {username} / {password}"
