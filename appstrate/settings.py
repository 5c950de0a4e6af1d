"""Appstrate settings: the only module that reads the environment.

Each optional service switches its adapters on (DESIGN.md section 1); `infra.mode.decide`
turns the raw variables into the tier and one adapter per port.
"""

import os
import secrets
import sys
import time
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from infra.mode import decide

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()  # SECRET_KEY_FILE=/run/secrets/key works for Docker secrets
# A dev convenience; APPSTRATE_ENV_FILE points elsewhere (bin/test uses /dev/null, so a
# developer's .env never leaks into the suite).
ENV_FILE = Path(env.str("APPSTRATE_ENV_FILE", default=str(BASE_DIR / ".env")))
if ENV_FILE.is_file():
    environ.Env.read_env(ENV_FILE)  # real environment variables win (setdefault)

# Local state at tiers 0 and 1: the SQLite file, generated dev keys, stored files.
DATA_DIR = Path(env.str("APPSTRATE_DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

# A fresh checkout runs with nothing set; production turns DEBUG off and must supply secrets.
DEBUG = env.bool("DEBUG", default=True)


def _dev_secret(name: str, make) -> str:
    """Read a development secret from data/, creating it once (only ever with DEBUG on)."""
    path = DATA_DIR / name
    try:
        # O_EXCL: when two processes start at once on a fresh data dir, exactly one writes.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as file:
            file.write(make())
    for _ in range(50):  # the writer may not have flushed yet
        if value := path.read_text().strip():
            return value
        time.sleep(0.01)
    raise ImproperlyConfigured(f"{path} is empty. Fix: delete it; it is regenerated at start.")


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Fix: set SECRET_KEY (or SECRET_KEY_FILE) "
            "to a long random string, or DEBUG=true for local development."
        )
    SECRET_KEY = _dev_secret("secret_key", lambda: secrets.token_urlsafe(50))

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The service variables that pick the tier.
DATABASE_URL = env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")
S3_BUCKET = env.str("S3_BUCKET", default="")
RUN_ADAPTER = env.str("RUN_ADAPTER", default="process")
APPSTRATE_MODE = decide(
    database_url=DATABASE_URL, redis_url=REDIS_URL, s3_bucket=S3_BUCKET, run_adapter=RUN_ADAPTER
)
# `runserver` with autoreload is two processes: a watcher that restarts the server when code
# changes, and the server itself (RUN_MAIN=true). The watcher serves nothing, so it neither
# logs the startup line nor runs the in-process executor.
AUTORELOAD_WATCHER = (
    sys.argv[1:2] == ["runserver"]
    and "--noreload" not in sys.argv
    and not env.bool("RUN_MAIN", default=False)
)
# `manage.py doctor` probes every service itself and reports each one, so it still runs (and
# shows its table) where a boot check would stop any other process.
BOOT_CHECKS = sys.argv[1:2] != ["doctor"]

INSTALLED_APPS = [
    "daphne",  # first, so runserver serves ASGI: HTTP and WebSockets in one process
    "appstrate.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "infra",
    "workflows",
    "runs",
    "credentials",
    "api",
    "demo",  # the demo workflows (demo/flows.py), synced by migrate
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves STATIC_ROOT with DEBUG off (the image runs daphne alone, no web server in front).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "appstrate.urls"
WSGI_APPLICATION = "appstrate.wsgi.application"
ASGI_APPLICATION = "appstrate.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite in data/ by default (WAL, IMMEDIATE transactions so writers queue instead of
# failing on lock upgrade, and a busy timeout); PostgreSQL when DATABASE_URL names one.
DATABASES = {
    "default": env.db_url_config(DATABASE_URL)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"}
}
if APPSTRATE_MODE.database == "sqlite":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # A file (not memory) so executor threads and subprocesses in tests see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# The engine's hot statements are prepared on each PostgreSQL connection (a third of the
# database's CPU per run). Turn off behind a pooler that cannot keep them (PgBouncer in
# transaction mode before 1.21).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis (tier 2+): one URL feeds the broker, the channel layer, cancel pub-sub and the
# rate-limit cache; each use gets its own key prefix.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="appstrate")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:ch"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Thread-safe: the executor threads publish into the serving loop (infra/realtime).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "infra.realtime.inmemory.ThreadSafeInMemoryChannelLayer"}
    }
    # django-ratelimit refuses a local-memory cache because it is not shared between processes.
    # At tiers 0 and 1 there is exactly one serving process, so a per-process limit is correct.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
RATELIMIT_USE_CACHE = "default"


def _rate(name: str, default: str) -> str:
    """A django-ratelimit rate such as "120/m" (empty: no limit), checked at boot."""
    import re

    value = env.str(name, default=default).strip()
    if value and not re.fullmatch(r"[0-9]+/[0-9]*[smhd]", value):
        raise ImproperlyConfigured(f'{name}={value!r} is not a rate. Fix: e.g. {name}="120/m".')
    return value


# Requests per client address, counted in the default cache (api/ratelimits.py).
API_RATE_LIMIT = _rate("API_RATE_LIMIT", "300/m")
WEBHOOK_RATE_LIMIT = _rate("WEBHOOK_RATE_LIMIT", "120/m")
LOGIN_RATE_LIMIT = _rate("LOGIN_RATE_LIMIT", "10/m")

# Celery (tier 2+). The longest run allowed bounds the visibility timeout, so Redis never
# redelivers a run that is still executing.
RUN_MAX_TIMEOUT_SECONDS = env.int("RUN_MAX_TIMEOUT_SECONDS", default=6 * 3600)
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": RUN_MAX_TIMEOUT_SECONDS + 600,
    "global_keyprefix": f"{REDIS_PREFIX}:celery:",
    "socket_connect_timeout": 2,
    "max_retries": 0,
}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_DEFAULT_QUEUE", default="appstrate")
# Celery pool processes keep their PostgreSQL connection between tasks (each run is one task;
# a new connection per run costs as much as a few steps' queries); web processes do not.
WORKER_CONN_MAX_AGE = env.int("WORKER_CONN_MAX_AGE", default=60)
# Celery's Django fixup closes every database connection after each task unless this is set
# (then after every 2 x this many tasks): a reconnection per run cost more than the run's own
# statements. WORKER_CONN_MAX_AGE still retires connections older than that, between tasks.
CELERY_DB_REUSE_MAX = 1000

# The in-process executor (tiers 0 and 1): how many runs execute at once in the serving process.
EXECUTOR_CONCURRENCY = env.int("EXECUTOR_CONCURRENCY", default=4)
# Steps of one run that may execute at the same time.
STEP_CONCURRENCY = env.int("STEP_CONCURRENCY", default=4)
# How often an executor heartbeats its runs, and when a silent run counts as orphaned.
HEARTBEAT_SECONDS = env.float("HEARTBEAT_SECONDS", default=5.0)
ORPHAN_AFTER_SECONDS = env.float("ORPHAN_AFTER_SECONDS", default=30.0)
# Retention (manage.py pruneruns): finished runs older than this many days, or beyond this many
# per workflow, are deleted with their steps and events; 0 = no limit. A workflow's
# `policies.retention` overrides either.
RUNS_RETENTION_DAYS = env.int("RUNS_RETENTION_DAYS", default=30)
RUNS_RETENTION_COUNT = env.int("RUNS_RETENTION_COUNT", default=1000)
# The largest JSON output a step (or a run) may produce; bigger ones fail the step clearly.
STEP_OUTPUT_MAX_BYTES = env.int("STEP_OUTPUT_MAX_BYTES", default=1024 * 1024)
# The scheduler (a thread at tiers 0/1, `manage.py runscheduler` at tier 2+): how often it
# looks for due fires, how late a fire may be before it counts as missed (catch-up policy), and
# how often it re-dispatches queued runs the broker never got (or lost) and orphaned runs.
SCHEDULER_TICK_SECONDS = env.float("SCHEDULER_TICK_SECONDS", default=0.5)
SCHEDULE_MISFIRE_GRACE_SECONDS = env.float("SCHEDULE_MISFIRE_GRACE_SECONDS", default=30.0)
SWEEP_SECONDS = env.float("SWEEP_SECONDS", default=5.0)
DISPATCH_GRACE_SECONDS = env.float("DISPATCH_GRACE_SECONDS", default=5.0)
REDISPATCH_AFTER_SECONDS = env.float("REDISPATCH_AFTER_SECONDS", default=300.0)
# Every Celery worker's main process runs the same sweeps this often (they are safe to run in
# many processes at once), so a deployment without `runscheduler` still recovers stranded and
# orphaned runs; 0 turns it off.
WORKER_SWEEP_SECONDS = env.float("WORKER_SWEEP_SECONDS", default=15.0)

# Storage: local files in data/storage, or S3 via django-storages when S3_BUCKET is set.
S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", default="")
S3_REGION = env.str("S3_REGION", default="us-east-1")
S3_ACCESS_KEY_ID = env.str("S3_ACCESS_KEY_ID", default="")
S3_SECRET_ACCESS_KEY = env.str("S3_SECRET_ACCESS_KEY", default="")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": S3_REGION,
            "access_key": S3_ACCESS_KEY_ID or None,
            "secret_key": S3_SECRET_ACCESS_KEY or None,
            "addressing_style": "path",
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": DATA_DIR / "storage"},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Run isolation: a subprocess per script step, or (RUN_ADAPTER=docker) a container per run.
DOCKER_HOST = env.str("DOCKER_HOST", default="")
RUN_IMAGE = env.str("RUN_IMAGE", default="appstrate/run:latest")
# The network the credential sidecar reaches the outside through (the script container itself
# is only on an internal network with the sidecar). Build the image with infra/images/build.sh.
RUN_EGRESS_NETWORK = env.str("RUN_EGRESS_NETWORK", default="bridge")

# Credentials key ring: "k2:BASE64KEY,k1:BASE64KEY", the first key active, the others only
# decrypt (credentials/keyring.py). CREDENTIALS_KEYS_FILE=/run/secrets/keys works too, one
# entry per line. With DEBUG on and nothing set, a development key is generated once in data/.
try:
    CREDENTIALS_KEYS = env.str("CREDENTIALS_KEYS", default="").strip()
except OSError as exc:
    raise ImproperlyConfigured(
        f"CREDENTIALS_KEYS_FILE cannot be read ({exc.strerror}: {exc.filename}). "
        "Fix: point it at a readable file of ID:BASE64KEY lines, or set CREDENTIALS_KEYS."
    ) from None
CREDENTIALS_KEYS_SOURCE = (
    "CREDENTIALS_KEYS_FILE" if env.str("CREDENTIALS_KEYS_FILE", default="") else "CREDENTIALS_KEYS"
)
CREDENTIALS_DEV_KEY_GENERATED = False
if not CREDENTIALS_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CREDENTIALS_KEYS is not set and DEBUG is off. Fix: set CREDENTIALS_KEYS (or "
            "CREDENTIALS_KEYS_FILE) to ID:BASE64KEY entries; manage.py rotatecredentials "
            "--generate-key prints one."
        )
    _dev_keys_path = DATA_DIR / "credentials_keys"
    CREDENTIALS_DEV_KEY_GENERATED = not _dev_keys_path.exists()
    CREDENTIALS_KEYS = _dev_secret("credentials_keys", lambda: "dev1:" + secrets.token_urlsafe(32))
    CREDENTIALS_KEYS_SOURCE = f"the development key file {_dev_keys_path}"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
# WhiteNoise warns on every start when it is missing (before the first collectstatic).
STATIC_ROOT.mkdir(exist_ok=True)

# Production hardening, on whenever DEBUG is off (`manage.py check --deploy` stays clean).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Body limit for the API and webhooks: bigger requests get a 413, never a 500.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", default=1024 * 1024)
# Webhooks: their own body limit, and how far a signed request's timestamp may be from now
# (a captured request replayed later than this is refused).
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOK_SIGNATURE_TOLERANCE_SECONDS = env.int("WEBHOOK_SIGNATURE_TOLERANCE_SECONDS", default=300)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
        for name in ("appstrate", "infra", "workflows", "runs", "credentials")
    },
}
