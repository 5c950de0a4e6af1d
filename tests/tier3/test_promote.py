"""manage.py promote: tier 0 (SQLite) to PostgreSQL, rows and (with S3) stored files."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from infra.registry import get_storage
from runs.models import Run, RunEvent
from workflows.models import Workflow

pytestmark = [pytest.mark.tier2, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def tier0(tmp_path_factory):
    """A migrated tier 0 data dir with users, a workflow, runs, events and stored files."""
    data_dir = tmp_path_factory.mktemp("tier0")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "RUN_ADAPTER")
    }
    env["APPSTRATE_DATA_DIR"] = str(data_dir)
    made = subprocess.run(
        [sys.executable, "-m", "tests.tier3.tier0_data"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return data_dir, json.loads(made.stdout.strip().splitlines()[-1])


def _promote(data_dir, *extra):
    return call_command(
        "promote",
        "--from",
        f"sqlite:///{data_dir / 'db.sqlite3'}",
        "--files-from",
        str(data_dir / "storage"),
        *extra,
    )


def test_it_copies_every_row_and_verifies_the_counts(tier0, capsys):
    data_dir, ids = tier0
    summary = _promote(data_dir)
    assert "counts verified" in summary
    out = capsys.readouterr().out
    assert "runs_runevent" in out
    # Credentials move encrypted: the operator is told to keep the same keys.
    assert "Credentials were copied encrypted" in out
    # Rows, their links (a cycle and a self reference) and their timestamps survive the move.
    parent = Run.objects.get(pk=ids["parent"])
    assert parent.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parent.output == {"ok": True}
    assert Run.objects.get(pk=ids["child"]).parent_run_id == parent.pk
    assert Workflow.objects.get(slug="demo").current_version.number == 1
    assert RunEvent.objects.filter(run=parent).count() == 3
    # Users keep their passwords and their group permissions.
    # (The tests hash with MD5 for speed, so compare the stored hash, not a login.)
    assert User.objects.get(username="alice").password == ids["alice_password"]
    assert User.objects.get(username="bob").has_perm("runs.cancel_run")


def test_it_resets_sequences_so_new_rows_get_fresh_ids(tier0):
    data_dir, ids = tier0
    _promote(data_dir)
    parent = Run.objects.get(pk=ids["parent"])
    new = Run.objects.create(workflow=parent.workflow, version=parent.version)
    assert new.pk > ids["child"]


def test_it_refuses_a_target_that_is_not_empty_unless_forced(tier0):
    data_dir, ids = tier0
    _promote(data_dir)
    Run.objects.filter(pk=ids["parent"]).update(error="changed after promotion")
    with pytest.raises(CommandError, match=r"not empty.*--force"):
        _promote(data_dir)
    # It should have changed nothing.
    assert Run.objects.get(pk=ids["parent"]).error == "changed after promotion"
    _promote(data_dir, "--force")
    assert Run.objects.get(pk=ids["parent"]).error == ""


def test_it_refuses_a_missing_source_file(tmp_path):
    with pytest.raises(CommandError, match="No SQLite file"):
        call_command("promote", "--from", f"sqlite:///{tmp_path / 'nope.sqlite3'}")


def test_it_refuses_a_source_that_is_not_sqlite():
    with pytest.raises(CommandError, match="SQLite URL"):
        call_command("promote", "--from", "postgres://postgres@127.0.0.1:5432/x")


@pytest.mark.tier3
def test_it_copies_stored_files_to_the_bucket(tier0):
    data_dir, _ids = tier0
    storage = get_storage()
    for name in ("runs/1/output.json", "top.txt"):
        if storage.exists(name):
            storage.delete(name)
    summary = _promote(data_dir, "--force")
    assert "2 files" in summary
    with storage.open("runs/1/output.json") as handle:
        assert handle.read() == b'{"big": "output"}'
    # Promoting again keeps the files already there instead of duplicating them.
    assert "2 files" in _promote(data_dir, "--force")
    assert storage.listdir("runs/1")[1] == ["output.json"]
