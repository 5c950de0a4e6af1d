import pytest
from django.core.management import CommandError, call_command

from api.models import ApiToken
from tests.api.helpers import make_client

pytestmark = pytest.mark.django_db


def test_it_prints_a_working_token_once(alice, capsys):
    call_command("createapitoken", "alice", "--name", "ci", "--scope", "read", "--scope", "run")
    text = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(name="ci")
    assert token.scopes == ["read", "run"] and token.user == alice
    assert make_client(text).get("/api/workflows").status_code == 200


def test_it_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="No active user"):
        call_command("createapitoken", "nobody", "--name", "x")
