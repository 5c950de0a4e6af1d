from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken
from api.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for a user and print it (the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument(
            "--scope",
            action="append",
            choices=ApiToken.SCOPES,
            dest="scopes",
            help="read, run or cancel; repeat for several (default: read).",
        )

    def handle(self, *args, username, name, scopes, **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        _, text = create_token(user, name=name, scopes=scopes or ["read"])
        self.stdout.write(text)
