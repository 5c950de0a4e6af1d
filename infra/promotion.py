"""Promotion from tier 0 to tier 1+: copy every row of the SQLite file into PostgreSQL (and,
with S3 configured, every stored file into the bucket), then verify the counts.

The copy runs in one transaction on the target. PostgreSQL checks Django's foreign keys at
commit (they are DEFERRABLE INITIALLY DEFERRED), so rows can go in model by model even where
models point at each other (a workflow and its current version, a run and its parent run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import environ
from django.apps import apps
from django.core.files.storage import FileSystemStorage, Storage
from django.core.management.color import no_style
from django.db import connections, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Q
from django.db.utils import load_backend

SOURCE_ALIAS = "promote_source"
BATCH_SIZE = 1000
# Rows `migrate` itself writes into a fresh target: they do not make it "not empty".
# Promotion replaces them with the source's rows all the same, so every id pointing at them
# (permissions, admin log entries, runs of code-defined workflows) stays right.
MIGRATE_FILLED = {
    "contenttypes.contenttype": Q(pk__isnull=False),
    "auth.permission": Q(pk__isnull=False),
    # Code-defined workflows (flows.py) are synced into the database after every migrate.
    "workflows.workflow": Q(source="code"),
    "workflows.workflowversion": Q(workflow__source="code"),
}


class PromotionError(Exception):
    """Promotion cannot start or did not verify; the message says why and what to do."""


@dataclass
class TableCount:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass
class PromotionReport:
    tables: list[TableCount] = field(default_factory=list)
    files_copied: int = 0
    files_present: int = 0  # already in the target storage with the same size
    files_expected: int = 0

    @property
    def rows(self) -> int:
        return sum(count.target for count in self.tables)

    @property
    def ok(self) -> bool:
        files_ok = self.files_copied + self.files_present == self.files_expected
        return files_ok and all(count.ok for count in self.tables)


def sqlite_path(source: str) -> Path:
    """The file named by `sqlite:///path` (django-environ's form) or by a plain path."""
    if "://" not in source:
        return Path(source)
    config = environ.Env.db_url_config(source)
    if config["ENGINE"] != "django.db.backends.sqlite3":
        raise PromotionError(f"--from must be a SQLite URL (sqlite:///path), not {source!r}.")
    return Path(config["NAME"])


def copy_models() -> list[type[models.Model]]:
    """Every concrete table Django manages, many-to-many tables included."""
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and not model._meta.swapped
    ]


@contextlib.contextmanager
def source_connection(path: Path) -> Iterator[str]:
    """Open the SQLite file under its own connection alias, read-only in spirit."""
    if not path.is_file():
        raise PromotionError(f"No SQLite file at {path}. Fix: pass --from sqlite:///PATH.")
    settings_dict = {
        **connections["default"].settings_dict,
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {},
        "TEST": {},
    }
    # A connection made here and not added to settings.DATABASES: nothing else routes to it.
    connection = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, SOURCE_ALIAS)
    connections[SOURCE_ALIAS] = connection
    try:
        yield SOURCE_ALIAS
    finally:
        connection.close()
        del connections[SOURCE_ALIAS]


def check_target(source: str, *, force: bool) -> None:
    target = connections["default"]
    if target.vendor != "postgresql":
        raise PromotionError(
            "promote copies into the PostgreSQL database named by DATABASE_URL, but the "
            f"current database is {target.vendor}. Fix: set DATABASE_URL=postgres://... and run "
            "manage.py migrate first."
        )
    applied_source = set(MigrationRecorder(connections[source]).applied_migrations())
    applied_target = set(MigrationRecorder(target).applied_migrations())
    if applied_source - applied_target:
        missing = ", ".join(sorted(f"{a}.{n}" for a, n in applied_source - applied_target)[:5])
        raise PromotionError(
            f"The target lacks migrations the SQLite file has ({missing}). "
            "Fix: run manage.py migrate with DATABASE_URL set, then promote again."
        )
    if applied_target - applied_source:
        missing = ", ".join(sorted(f"{a}.{n}" for a, n in applied_target - applied_source)[:5])
        raise PromotionError(
            f"The SQLite file lacks migrations the target has ({missing}). Fix: run manage.py "
            "migrate with DATABASE_URL unset (on the SQLite file), then promote again."
        )
    if not force:
        busy = [
            model._meta.db_table
            for model in copy_models()
            if model._base_manager.exclude(
                MIGRATE_FILLED.get(model._meta.label_lower, Q(pk__in=[]))
            ).exists()
        ]
        if busy:
            raise PromotionError(
                f"The target database is not empty ({', '.join(busy[:5])} have rows). "
                "Fix: promote into a freshly migrated database, or pass --force to replace "
                "everything in it."
            )


@contextlib.contextmanager
def _creation_times_kept(model_list: list[type[models.Model]]) -> Iterator[None]:
    """Copies keep their timestamps: auto_now(_add) would stamp every row with now."""
    changed = []
    for model in model_list:
        for fld in model._meta.concrete_fields:
            if getattr(fld, "auto_now", False) or getattr(fld, "auto_now_add", False):
                changed.append((fld, fld.auto_now, fld.auto_now_add))
                fld.auto_now = fld.auto_now_add = False
    try:
        yield
    finally:
        for fld, auto_now, auto_now_add in changed:
            fld.auto_now, fld.auto_now_add = auto_now, auto_now_add


def copy_rows(source: str) -> list[TableCount]:
    """Replace every table of the target by the source's rows, reset sequences, count."""
    model_list = copy_models()
    target = connections["default"]
    tables = [model._meta.db_table for model in model_list]
    with transaction.atomic(using="default"), _creation_times_kept(model_list):
        with target.cursor() as cursor:
            for sql in target.ops.sql_flush(no_style(), tables, allow_cascade=True):
                cursor.execute(sql)
        for model in model_list:
            batch = []
            for row in model._base_manager.using(source).order_by("pk").iterator(BATCH_SIZE):
                batch.append(row)
                if len(batch) >= BATCH_SIZE:
                    model._base_manager.using("default").bulk_create(batch)
                    batch = []
            if batch:
                model._base_manager.using("default").bulk_create(batch)
        with target.cursor() as cursor:
            for sql in target.ops.sequence_reset_sql(no_style(), model_list):
                cursor.execute(sql)
        # Verified before commit: a mismatch rolls the whole copy back.
        counts = [
            TableCount(
                model._meta.db_table,
                model._base_manager.using(source).count(),
                model._base_manager.using("default").count(),
            )
            for model in model_list
        ]
        wrong = [f"{c.table} ({c.source} vs {c.target})" for c in counts if not c.ok]
        if wrong:
            raise PromotionError(f"Counts differ after the copy, nothing kept: {', '.join(wrong)}")
    return counts


def stored_names(storage: Storage, directory: str = "") -> Iterator[str]:
    directories, files = storage.listdir(directory)
    for name in files:
        yield f"{directory}/{name}" if directory else name
    for sub in directories:
        yield from stored_names(storage, f"{directory}/{sub}" if directory else sub)


def copy_files(source: Storage, target: Storage, report: PromotionReport) -> None:
    """Copy every file under the same name; one already there with the same size is kept."""
    for name in stored_names(source):
        report.files_expected += 1
        if target.exists(name) and target.size(name) == source.size(name):
            report.files_present += 1
            continue
        if target.exists(name):
            target.delete(name)
        with source.open(name) as handle:
            saved = target.save(name, handle)
        if saved != name:
            raise PromotionError(f"The target storage stored {name!r} as {saved!r}.")
        report.files_copied += 1


def promote(
    source: str, *, force: bool = False, files_from: Path | None = None, files_to: Storage | None
) -> PromotionReport:
    """Copy the SQLite file `source` (path or sqlite:/// URL) into the default database and,
    when `files_to` is given, the files under `files_from` into it. Raises PromotionError."""
    report = PromotionReport()
    with source_connection(sqlite_path(source)) as alias:
        check_target(alias, force=force)
        report.tables = copy_rows(alias)
    if files_to is not None and files_from is not None and files_from.is_dir():
        copy_files(FileSystemStorage(location=files_from), files_to, report)
    return report
