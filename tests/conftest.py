import os

import pytest
from django.conf import settings

# Playwright's sync API runs an event loop in the test thread; Django must allow ORM calls there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config, items):
    # Tier 3 tests need a Docker engine and an S3 server, which only the tier 3 pass of bin/test
    # brings up (S3_BUCKET and RUN_ADAPTER=docker set); every other pass deselects them.
    mode = settings.APPSTRATE_MODE
    if not (mode.storage == "s3" and mode.run_adapter == "docker"):
        # By marker, not keyword: "tier3" is also the name of the tests/tier3 package.
        tier3 = [item for item in items if item.get_closest_marker("tier3")]
        if tier3:
            config.hook.pytest_deselected(items=tier3)
            items[:] = [item for item in items if not item.get_closest_marker("tier3")]
    # Tier 2 tests need the services of the tier 2 pass; tier 0 tests are about the in-process
    # executor of tiers 0 and 1; sqlite and postgresql tests are about that database itself.
    # Each is deselected in the passes it does not belong to, not skipped, so a skip never
    # hides a gap: bin/test runs every pass.
    other = {"tier0" if settings.REDIS_URL else "tier2"}
    other.add("sqlite" if settings.APPSTRATE_MODE.database != "sqlite" else "postgresql")
    keep, elsewhere = [], []
    for item in items:
        belongs_elsewhere = any(item.get_closest_marker(name) for name in other)
        (elsewhere if belongs_elsewhere else keep).append(item)
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = keep


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # For speed, as healthchecks does.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(django_user_model):
    """An operator: superuser, may do everything."""
    return django_user_model.objects.create_superuser("alice", "alice@example.com", "password")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _staff_with_perms(django_user_model, username, codenames):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username, f"{username}@example.com", "password")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def bob(django_user_model):
    """A viewer: staff who may look at workflows and runs (view_* only), and do nothing else."""
    return _staff_with_perms(
        django_user_model,
        "bob",
        ["view_workflow", "view_workflowversion", "view_run", "view_steprun", "view_runevent"],
    )


@pytest.fixture
def charlie(django_user_model):
    """Staff with no permissions at all: should see no runs, live or otherwise."""
    return _staff_with_perms(django_user_model, "charlie", [])


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace_per_xdist_worker(worker_id):
    """At tier 2, give each xdist worker its own Redis key prefix (broker, pub-sub, channels,
    cache), here and in every child process it starts (they inherit REDIS_PREFIX): otherwise a
    Celery worker started by one xdist worker takes runs that exist only in the other's
    test database."""
    if not settings.REDIS_URL or worker_id == "master":
        yield
        return
    from appstrate.celery import app as celery_app
    from infra import registry

    prefix = f"{settings.REDIS_PREFIX}-{worker_id}"
    os.environ["REDIS_PREFIX"] = prefix
    settings.REDIS_PREFIX = prefix
    options = {**celery_app.conf.broker_transport_options, "global_keyprefix": f"{prefix}:celery:"}
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    celery_app.conf.broker_transport_options = options
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"{prefix}:ch"
    settings.CACHES["default"]["KEY_PREFIX"] = f"{prefix}:cache"
    registry.reset()
    yield


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery -A appstrate worker` process (concurrency 2) on the test database.

    Tier 2 only; it consumes the queues `appstrate` and `special`. Tests need
    `@pytest.mark.django_db(transaction=True)`: the worker only sees committed rows. A test
    that kills it calls `.start()` again afterwards (or `ensure_running()`).
    """
    if not settings.REDIS_URL:
        raise RuntimeError("celery_worker_process needs REDIS_URL (mark the test tier2)")
    from tests.tier2_processes import CeleryWorker

    worker = CeleryWorker(tmp_path_factory.mktemp("celery"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(autouse=True)
def _forget_remembered_secrets():
    # Masking remembers every secret the process decrypted; one test's secrets (a token like
    # "abcd") must not mask another test's expected output in the same worker.
    from credentials import masking

    masking.forget_all()
    yield
    masking.forget_all()
