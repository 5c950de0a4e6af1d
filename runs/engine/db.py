"""The engine's hot-path writes, as plain SQL, and a write transaction that suits SQLite.

A step costs one short transaction; the ORM's query building alone cost more than the SQL, so
the few statements of the loop are written out here. Values still go through each field's own
`get_db_prep_save`, so JSON and datetimes are stored exactly as the ORM stores them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction

from runs.models import StepRun

# SQLite has one writer at a time and makes a blocked writer sleep (1 ms, 2 ms, 5 ms...) before
# trying again. Threads of one process queue on this lock instead and get the database the
# moment it is free; other processes still meet the busy timeout.
_sqlite_writers = threading.Lock()


@contextmanager
def write_transaction() -> Iterator[None]:
    """`transaction.atomic()`, serialised within the process when the database is SQLite."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    with _sqlite_writers, transaction.atomic():
        yield


_step_fields = {field.attname: field for field in StepRun._meta.concrete_fields}


def update_steps(writes: dict[int, dict[str, Any]]) -> None:
    """UPDATE each StepRun row with its changed fields (call inside a transaction)."""
    table = connection.ops.quote_name(StepRun._meta.db_table)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for row_id, fields in writes.items():
            names = list(fields)
            assignments = ", ".join(f"{quote(name)} = %s" for name in names)
            params = [
                _step_fields[name].get_db_prep_save(fields[name], connection) for name in names
            ]
            cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*params, row_id])
