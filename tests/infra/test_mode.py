"""Mode selection for every combination of the four service variables (DESIGN.md section 1)."""

import itertools

import pytest
from django.core.exceptions import ImproperlyConfigured

from infra.mode import decide

DATABASES = {
    "none": "",
    "sqlite": "sqlite:////tmp/appstrate.sqlite3",
    "postgres": "postgres://app:s3cret@db.internal:5432/appstrate",
    "unparseable": "postgres://app:s3cret@db.internal:notaport/appstrate",
    "unsupported": "mysql://app:s3cret@db.internal/appstrate",
}
REDIS = {"none": "", "redis": "redis://:s3cret@cache.internal:6379/0"}
S3 = {"none": "", "bucket": "appstrate-files"}
RUN_ADAPTERS = {"none": "", "process": "process", "docker": "docker", "unknown": "kubernetes"}

COMBINATIONS = list(itertools.product(DATABASES, REDIS, S3, RUN_ADAPTERS))


def decide_named(database: str, redis: str, s3: str, run_adapter: str):
    return decide(
        database_url=DATABASES[database],
        redis_url=REDIS[redis],
        s3_bucket=S3[s3],
        run_adapter=RUN_ADAPTERS[run_adapter],
    )


def expected_error(database: str, redis: str, run_adapter: str) -> str | None:
    """The variable the boot message must name, in the order decide() checks them."""
    if database in ("unparseable", "unsupported"):
        return "DATABASE_URL"
    if run_adapter == "unknown":
        return "RUN_ADAPTER"
    if redis == "redis" and database != "postgres":
        return "REDIS_URL"
    return None


@pytest.mark.parametrize(("database", "redis", "s3", "run_adapter"), COMBINATIONS)
def test_it_picks_adapters_or_names_the_variable(database, redis, s3, run_adapter):
    variable = expected_error(database, redis, run_adapter)
    if variable:
        with pytest.raises(ImproperlyConfigured) as raised:
            decide_named(database, redis, s3, run_adapter)
        message = str(raised.value)
        # It should name the variable, say how to fix it, and never echo a password.
        assert message.startswith(variable) or f"{variable} " in message
        assert "Fix:" in message
        assert "s3cret" not in message
        return

    mode = decide_named(database, redis, s3, run_adapter)
    assert mode.database == ("postgresql" if database == "postgres" else "sqlite")
    uses_redis = redis == "redis"
    assert mode.executor == ("celery" if uses_redis else "inline")
    assert mode.channels == ("redis" if uses_redis else "inmemory")
    assert mode.pubsub == ("redis" if uses_redis else "local")
    assert mode.ratelimit_cache == ("redis" if uses_redis else "locmem")
    assert mode.storage == ("s3" if s3 == "bucket" else "local")
    assert mode.run_adapter == ("docker" if run_adapter == "docker" else "process")


@pytest.mark.parametrize(
    ("database", "redis", "s3", "run_adapter", "tier"),
    [
        ("none", "none", "none", "none", 0),
        ("sqlite", "none", "none", "process", 0),
        ("postgres", "none", "none", "none", 1),
        ("postgres", "redis", "none", "none", 2),
        ("postgres", "redis", "bucket", "none", 3),
        ("postgres", "redis", "none", "docker", 3),
        ("postgres", "redis", "bucket", "docker", 3),
    ],
)
def test_it_numbers_the_tiers_of_the_design(database, redis, s3, run_adapter, tier):
    assert decide_named(database, redis, s3, run_adapter).tier == tier


def test_it_explains_why_redis_needs_postgresql():
    with pytest.raises(ImproperlyConfigured, match="cannot share a SQLite file") as raised:
        decide(redis_url="redis://127.0.0.1:6379/0")
    assert "Fix: set DATABASE_URL=postgres://" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("localhost/appstrate", "has no scheme"),
        ("postgres://[::1/appstrate", "could not be parsed"),
        ("postgres://db:99999/appstrate", "could not be parsed"),
        ("postgres://db:5432", "names no database"),
        ("http://db/appstrate", "unsupported scheme 'http'"),
    ],
)
def test_it_names_what_is_wrong_with_a_database_url(url, reason):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL") as raised:
        decide(database_url=url)
    assert reason in str(raised.value)


def test_it_refuses_a_redis_url_of_another_scheme():
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL must start with redis://") as raised:
        decide(database_url=DATABASES["postgres"], redis_url="http://user:s3cret@cache/0")
    assert "s3cret" not in str(raised.value)


def test_it_accepts_adapter_names_in_any_case():
    assert decide(run_adapter=" Docker ").run_adapter == "docker"
    assert decide(run_adapter="subprocess").run_adapter == "process"


def test_it_names_every_port_in_the_startup_line():
    line = decide(database_url=DATABASES["postgres"], redis_url=REDIS["redis"]).startup_line()
    assert line == (
        "Appstrate tier 2: database=postgresql executor=celery channels=redis pubsub=redis "
        "ratelimit_cache=redis storage=local run_adapter=process"
    )
