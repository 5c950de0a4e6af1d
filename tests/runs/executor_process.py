"""A stand-alone tier 0/1 executor process for the crash tests: `python -m tests.runs.executor_process`.

It is what the serving process does at start (the in-process executor's threads, picking up
queued and orphaned runs), plus the test step functions registered.
"""

import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")

import django

django.setup()

import tests.runs.steps  # noqa: E402, F401  (registers the functions the test workflows call)
from infra.executors.inline import InlineExecutor  # noqa: E402

executor = InlineExecutor(concurrency=2)
executor.start()
print(f"executor {executor.executor_id} ready", flush=True)
while True:
    time.sleep(1)
