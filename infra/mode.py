"""The one place that decides the tier and the adapter for each port.

`decide()` is pure: settings hands it the raw environment values and gets back a `Mode`,
or an `ImproperlyConfigured` that names the variable and the fix. Nothing else in the
project compares environment variables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

RUN_ADAPTERS = ("process", "docker")
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")


@dataclass(frozen=True)
class Mode:
    """The active tier and the adapter chosen for each port."""

    tier: int
    database: str  # "sqlite" | "postgresql"
    executor: str  # "inline" (threads in the serving process) | "celery"
    channels: str  # "inmemory" | "redis"
    pubsub: str  # "local" | "redis"  (cancel signals)
    ratelimit_cache: str  # "locmem" | "redis"
    storage: str  # "local" | "s3"
    run_adapter: str  # "process" | "docker"

    def ports(self) -> dict[str, str]:
        ports = asdict(self)
        ports.pop("tier")
        return ports

    def startup_line(self) -> str:
        ports = " ".join(f"{port}={name}" for port, name in self.ports().items())
        return f"Appstrate tier {self.tier}: {ports}"


DATABASE_URL_FIX = "Fix: use postgres://USER:PASSWORD@HOST:5432/NAME, or unset it for SQLite."


def redact(url: str) -> str:
    """The URL without its user and password, safe to show in an error message."""
    return url.rsplit("@", 1)[-1] if "@" in url else url


def database_kind(database_url: str) -> str:
    """Return "sqlite" or "postgresql" for a DATABASE_URL, or raise naming the variable."""
    if not database_url:
        return "sqlite"
    if "://" not in database_url:
        raise ImproperlyConfigured(
            f"DATABASE_URL could not be parsed: {redact(database_url)!r} has no scheme. "
            + DATABASE_URL_FIX
        )
    try:
        parts = urlsplit(database_url)
        parts.port  # noqa: B018 -- parsing the port is what raises for "host:abc"
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL could not be parsed ({exc}). " + DATABASE_URL_FIX
        ) from exc
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL uses the unsupported scheme {scheme!r}. " + DATABASE_URL_FIX
        )
    if not parts.path.strip("/"):
        raise ImproperlyConfigured(
            f"DATABASE_URL names no database: {redact(database_url)!r}. " + DATABASE_URL_FIX
        )
    return "postgresql"


def _scheme(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is what raises for "host:abc"
    except ValueError:
        return ""
    return parts.scheme.lower()


def decide(
    *, database_url: str = "", redis_url: str = "", s3_bucket: str = "", run_adapter: str = ""
) -> Mode:
    """Pick the tier and adapters from the four service variables (DESIGN.md section 1)."""
    database = database_kind(database_url)
    run_adapter = (run_adapter or "process").strip().lower()
    if run_adapter == "subprocess":
        run_adapter = "process"
    if run_adapter not in RUN_ADAPTERS:
        raise ImproperlyConfigured(
            f"RUN_ADAPTER={run_adapter!r} is not a known run adapter. "
            f"Fix: set RUN_ADAPTER to one of {', '.join(RUN_ADAPTERS)} (or unset it for process)."
        )
    if redis_url:
        if _scheme(redis_url) not in ("redis", "rediss", "unix"):
            raise ImproperlyConfigured(
                "REDIS_URL must start with redis://, rediss:// or unix://, "
                f"not {redact(redis_url)!r}. "
                "Fix: REDIS_URL=redis://HOST:6379/0."
            )
        if database != "postgresql":
            raise ImproperlyConfigured(
                "REDIS_URL is set but DATABASE_URL is not PostgreSQL: Celery workers in other "
                "processes cannot share a SQLite file. Fix: set DATABASE_URL=postgres://... "
                "or unset REDIS_URL to run everything in one process."
            )
    redis = "redis" if redis_url else None
    if database == "sqlite":
        tier = 0
    elif not redis_url:
        tier = 1
    elif s3_bucket or run_adapter == "docker":
        tier = 3
    else:
        tier = 2
    return Mode(
        tier=tier,
        database=database,
        executor="celery" if redis else "inline",
        channels=redis or "inmemory",
        pubsub=redis or "local",
        ratelimit_cache=redis or "locmem",
        storage="s3" if s3_bucket else "local",
        run_adapter=run_adapter,
    )
