"""Turns the boot-time mode into adapter instances: the only place that does.

Callers ask for a port (`get_executor()`, `get_pubsub()`, `get_run_adapter()`, `get_storage()`)
and never import an implementation or read the service settings themselves.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from infra.mode import Mode

if TYPE_CHECKING:
    from django.core.files.storage import Storage

    from infra.executors.base import Executor
    from infra.pubsub.base import PubSub
    from infra.runners.base import RunAdapter

ADAPTERS: dict[str, dict[str, str]] = {
    "executor": {
        "inline": "infra.executors.inline.InlineExecutor",
        "celery": "infra.executors.celery.CeleryExecutor",
    },
    "pubsub": {
        "local": "infra.pubsub.local.LocalPubSub",
        "redis": "infra.pubsub.redis.RedisPubSub",
    },
    "run_adapter": {
        "process": "infra.runners.process.ProcessRunAdapter",
        "docker": "infra.runners.docker.DockerRunAdapter",
    },
}


def get_mode() -> Mode:
    return settings.APPSTRATE_MODE


def _load(port: str, name: str) -> type:
    try:
        return import_string(ADAPTERS[port][name])
    except (KeyError, ImportError) as exc:
        raise ImproperlyConfigured(f"No {port} adapter named {name!r}: {exc}") from exc


@functools.cache
def get_executor() -> Executor:
    return _load("executor", get_mode().executor)()


@functools.cache
def get_pubsub() -> PubSub:
    return _load("pubsub", get_mode().pubsub)()


@functools.cache
def get_run_adapter() -> RunAdapter:
    return _load("run_adapter", get_mode().run_adapter)()


def get_storage() -> Storage:
    from django.core.files.storage import default_storage

    return default_storage


def reset() -> None:
    """Forget the adapter instances (tests that change the mode call this)."""
    for getter in (get_executor, get_pubsub, get_run_adapter):
        getter.cache_clear()
