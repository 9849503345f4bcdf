"""Settings for the bookstore, one module for every environment, driven by environment variables.

Nothing set gives the embedded default for `make run` on a bare machine: SQLite, Celery tasks run
eagerly in-process, local-memory cache. DATABASE_URL, READ_DATABASE_URL and REDIS_URL switch to the
real parts (PostgreSQL, Redis, Celery workers). See README.md for the full list.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Generic classes the type stubs declare (ModelAdmin[Book], QuerySet[Event]) subscriptable at
# run time too.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development)."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "apps.cqrs",
    "apps.contracts",
    "apps.write.catalog",
    "apps.write.inventory",
    "apps.write.customers",
    "apps.write.orders",
    "apps.write.demo",
    "apps.read.catalog",
    "apps.read.orders",
    "apps.read.reports",
    "apps.storefront",
    "apps.integration",
    "apps.audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After whitenoise: static files are not requests worth a series of their own.
    "apps.cqrs.metrics.RequestMetricsMiddleware",
    "apps.cqrs.middleware.RequestLimitsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.cqrs.middleware.CorrelationIdMiddleware",
    # Before anything reads the read side: picks the replica a query request reads from.
    "apps.cqrs.replicas.ReplicaReadsMiddleware",
    "apps.cqrs.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

# Bodies are refused before parsing beyond these (apps/cqrs/middleware.py): commands are small,
# and a deeply nested JSON body would otherwise exhaust the parser's recursion.
REQUEST_BODY_MAX_BYTES = int(os.environ.get("REQUEST_BODY_MAX_BYTES", 1_000_000))
JSON_MAX_DEPTH = 32
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
# Multipart bodies under /admin/ (staff uploading a book's cover) may be this large.
ADMIN_UPLOAD_MAX_BYTES = int(os.environ.get("ADMIN_UPLOAD_MAX_BYTES", 6_000_000))

# The benchmarks serve bench.urls: the project plus the naive baseline they compare against.
ROOT_URLCONF = os.environ.get("DJANGO_ROOT_URLCONF", "config.urls")
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "apps.storefront.cart.count",
            ],
        },
    },
]

# --- Databases -------------------------------------------------------------------------------
# `default` holds the write model and the event log; `read` holds the read models and projector
# checkpoints (config/db_router.py). Without READ_DATABASE_URL the read alias is a second
# connection to the write database, so one server is enough for development and small shops.
_sqlite_path = os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
_database_url = os.environ.get("DATABASE_URL", "")
_read_database_url = os.environ.get("READ_DATABASE_URL", "")


# Under ASGI (config/asgi.py sets it) connections come from a pool per process and alias: each
# request's sync part runs in a thread of its own there, and a connection kept per thread would
# be opened on every request and never reused. WSGI servers and workers keep one per thread.
DATABASE_POOL_MAX_SIZE = int(os.environ.get("DATABASE_POOL_MAX_SIZE", 0))
# Parameters bound by the server, and a statement run five times on a connection prepared
# there: PostgreSQL may then parse and plan it once (decision 0011). On in the workers, whose
# statements plan alike whatever their values; the web entry points (config/wsgi.py, asgi.py)
# turn it off, since a plan made once for any search text can read the whole catalog for one.
# Off too for a pooler that cannot keep prepared statements (PgBouncer before 1.21).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
# PostgreSQL cancels a statement that runs longer than this (a duration such as "5s"; empty for
# no limit). The web entry points (config/wsgi.py, config/asgi.py) set it, so that no request,
# whatever it asks, keeps a worker and a database backend busy past it (answered 503:
# apps/cqrs/middleware.py). Workers and management commands, whose batches and rebuilds may
# rightly run long, have none.
DATABASE_STATEMENT_TIMEOUT = os.environ.get("DATABASE_STATEMENT_TIMEOUT", "")


def _database(url: str) -> dict:
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite_path,
            # WAL lets the projector's connection write while a request's connection reads.
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
        }
    if DATABASE_POOL_MAX_SIZE:
        config = dj_database_url.parse(url, conn_max_age=0)
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DATABASE_POOL_MAX_SIZE,
            # A request that finds every connection busy (or the database away) this long: 503.
            "timeout": 3,
        }
    else:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    options = config.setdefault("OPTIONS", {})
    if DATABASE_PREPARED_STATEMENTS:
        options.update(server_side_binding=True, prepare_threshold=5)
    if DATABASE_STATEMENT_TIMEOUT:
        options["options"] = f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT}"
    return dict(config)


READ_DATABASE_IS_SEPARATE = bool(_read_database_url) and _read_database_url != _database_url
DATABASES = {"default": _database(_database_url)}
if READ_DATABASE_IS_SEPARATE:
    DATABASES["read"] = _database(_read_database_url)
else:
    DATABASES["read"] = {**_database(_database_url), "TEST": {"MIRROR": "default"}}
# Streaming replicas of the read database (apps/cqrs/replicas.py): query requests read from
# them, everything else from the read primary. Their connections are read-only.
READ_REPLICA_ALIASES = []
for _index, _url in enumerate(env_list("READ_REPLICA_URLS", "")):
    _replica = _database(_url)
    _options = _replica.setdefault("OPTIONS", {})
    _options.update(
        options=f"{_options.get('options', '')} -c default_transaction_read_only=on".strip(),
        connect_timeout=1,
    )
    DATABASES[f"replica{_index}"] = {**_replica, "TEST": {"MIRROR": "read"}}
    READ_REPLICA_ALIASES.append(f"replica{_index}")
# A replica whose replay is further behind than this leaves the rotation until it catches up.
READ_REPLICA_MAX_LAG_SECONDS = float(os.environ.get("READ_REPLICA_MAX_LAG_SECONDS", "10"))
READ_REPLICA_CHECK_SECONDS = float(os.environ.get("READ_REPLICA_CHECK_SECONDS", "1"))
DATABASE_ROUTERS = ["config.db_router.ReadWriteRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache -----------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CACHE_URL = os.environ.get("CACHE_URL", REDIS_URL)
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": CACHE_URL,
            # A Redis that stops answering costs a miss, never a request, and holds no request
            # up for long (config/cache.py).
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                "IGNORE_EXCEPTIONS": True,
            },
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "bookstore"),
            "TIMEOUT": 3600,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "config.cache"

# Where the projector runtime announces what it has passed, for waits and streams under ASGI
# (apps/cqrs/live.py); without it they poll the checkpoints.
CQRS_LIVE_URL = os.environ.get("CQRS_LIVE_URL", CACHE_URL)
# How often a pending wait re-reads the checkpoints, in case an announcement was lost: the
# longest a lost one costs a waiting reader, against a read of the cache per interval.
CQRS_LIVE_REFRESH_SECONDS = float(os.environ.get("CQRS_LIVE_REFRESH_SECONDS", 0.5))
# An event stream ends after this long and the client reconnects with Last-Event-ID: no
# connection outlives a deploy or a stuck proxy by much, and the load spreads over new servers.
CQRS_STREAM_SECONDS = float(os.environ.get("CQRS_STREAM_SECONDS", 300))

# --- Celery ----------------------------------------------------------------------------------
# Read by config/celery.py with the CELERY_ prefix.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL) or "memory://localhost/"
# No broker configured: run tasks inline so `make run` works with nothing installed.
CELERY_TASK_ALWAYS_EAGER = not (os.environ.get("CELERY_BROKER_URL") or REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
# At-least-once delivery. A task is acknowledged only after it has run (acks_late), is given back
# to the queue when the worker process running it dies (reject_on_worker_lost), and each worker
# process reserves one message at a time (prefetch 1) so a crash strands at most that one.
# Every task only catches a projector up from its checkpoint, so running one twice is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after each task unless this
# is set, so each catch-up paid for a new PostgreSQL backend (about four per order, most of the
# database's CPU in the benchmark). Connections are kept instead, and config/celery.py applies
# Django's own rules between tasks, as between requests: CONN_MAX_AGE and health checks.
CELERY_DB_REUSE_MAX = 1_000_000
# Redis redelivers a message nobody acknowledged after this long (a worker host that vanished).
# A publish to an unreachable broker fails at once instead of retrying for seconds (max_retries
# 0): the only things published are wake-ups, which the beat sweep makes up for, and a request
# must not wait on them. The worker's own consumer reconnects by broker_connection_max_retries.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 600,
    "socket_connect_timeout": 2,
    "max_retries": 0,
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "projections"
# Projection wake-ups, side effects (e-mails, process managers) and read-model builds (long:
# minutes, beside the live tables) scale separately: `celery -A config worker -Q projections`,
# `-Q side-effects` and `-Q rebuilds`.
CELERY_TASK_ROUTES = {
    "cqrs.sweep": {"queue": "projections"},
    "cqrs.build": {"queue": "rebuilds"},
    "orders.cancel_unpaid": {"queue": "side-effects"},
    "orders.recover_payments": {"queue": "side-effects"},
    "orders.recover_emails": {"queue": "side-effects"},
}
# GET /metrics (apps/cqrs/metrics.py) asks for `Authorization: Bearer <METRICS_TOKEN>` when set.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# A Celery worker serves its processes' metrics on this port when set (config/celery.py).
CELERY_METRICS_PORT = int(os.environ.get("CELERY_METRICS_PORT", "0"))
CELERY_METRICS_ADDRESS = os.environ.get("CELERY_METRICS_ADDRESS", "127.0.0.1")
# /readyz answers 503 when a projector is further behind than this (apps/cqrs/health.py).
READY_MAX_LAG_SECONDS = float(os.environ.get("READY_MAX_LAG_SECONDS", "60"))
CQRS_SWEEP_SECONDS = float(os.environ.get("CQRS_SWEEP_SECONDS", "5"))
CELERY_BEAT_SCHEDULE = {
    "catch-up-every-projector": {"task": "cqrs.sweep", "schedule": CQRS_SWEEP_SECONDS},
    "cancel-unpaid-orders": {"task": "orders.cancel_unpaid", "schedule": 60.0},
    "recover-payments": {"task": "orders.recover_payments", "schedule": 30.0},
    "recover-emails": {"task": "orders.recover_emails", "schedule": 30.0},
}
# An order not paid this long after it was placed is cancelled and its stock put back.
ORDER_PAYMENT_TIMEOUT_MINUTES = int(os.environ.get("ORDER_PAYMENT_TIMEOUT_MINUTES", "30"))

# --- The CQRS kernel -------------------------------------------------------------------------
CQRS_BATCH_SIZE = int(os.environ.get("CQRS_BATCH_SIZE", "500"))
CQRS_RETRY_MAX_SECONDS = int(os.environ.get("CQRS_RETRY_MAX_SECONDS", "300"))
# A slot's woken catch-ups start at most once per interval, in seconds (apps/cqrs/dispatch.py):
# a command committed sooner after the last start waits for the rest of the interval, joined
# by every other command until then. An idle shop's command is projected at once; under a
# stream of them one task covers many, where each task costs the worker about 4 ms of CPU in
# Celery alone (docs/decisions/0015-wake-up-intervals.md). Read-your-writes waits up to the
# projections' interval longer under load; e-mails and integration messages the
# side effects' interval.
CQRS_WAKE_INTERVALS = {
    "projections": float(os.environ.get("CQRS_PROJECTIONS_WAKE_INTERVAL", "0.05")),
    "side-effects": float(os.environ.get("CQRS_SIDE_EFFECTS_WAKE_INTERVAL", "1")),
}
# How long a query sent with X-Min-Position waits for the read model to catch up.
CQRS_READ_WAIT_SECONDS = float(os.environ.get("CQRS_READ_WAIT_SECONDS", "2"))

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "apps.write.customers.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.cqrs.api.exception_handler",
    # `?format=` is the catalog's book-format filter; pick a renderer with `.json` or Accept.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_THROTTLE_CLASSES": ["apps.cqrs.throttling.ScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "customer-commands": os.environ.get("CUSTOMER_COMMAND_RATE", "120/min"),
        "sign-up": os.environ.get("SIGN_UP_RATE", "30/hour"),
        "token": os.environ.get("TOKEN_RATE", "20/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bookstore CQRS API",
    "DESCRIPTION": "Queries are read-only viewsets over the read models; "
    "commands are POST endpoints under /api/commands/.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the project's static files, not from a CDN: the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Separate request and response components, so inputs carry their own rules (minLength).
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.cqrs.api.document_common_responses",
    ],
}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Repeated failed log-ins (storefront, admin, browsable API) lock that username out from that
# address for a while (django-axes, attempts kept in the write database).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "locked_out.html"
# Behind a load balancer, set this to the number of proxies that add X-Forwarded-For.
AXES_IPWARE_PROXY_COUNT = int(os.environ.get("DJANGO_PROXY_COUNT", "0")) or None

LOGIN_URL = "storefront:log-in"
LOGIN_REDIRECT_URL = "storefront:home"
LOGOUT_REDIRECT_URL = "storefront:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploads (book covers). On several machines, point every web server and the gateway at one
# volume, or set DJANGO_FILE_STORAGE to a shared storage's backend (django-storages' S3, say).
MEDIA_URL = os.environ.get("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", str(BASE_DIR / "media")))
# Django serves MEDIA_URL itself only where nothing in front of it does (the embedded default,
# tests); the gateway serves it in production (deploy/nginx.conf).
SERVE_MEDIA = env_bool("SERVE_MEDIA", DEBUG)
STORAGES = {
    "default": {
        "BACKEND": os.environ.get(
            "DJANGO_FILE_STORAGE", "django.core.files.storage.FileSystemStorage"
        )
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security --------------------------------------------------------------------------------
# DJANGO_HTTPS defaults to on outside DEBUG. Turn it off only where the site is served over plain
# HTTP on loopback (tests, benchmarks): it drives redirects, secure cookies and HSTS together.
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000")) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Integration messages for other systems (apps/integration): off unless a broker is named.
INTEGRATION_BROKER_URL = os.environ.get("INTEGRATION_BROKER_URL", "")
INTEGRATION_EXCHANGE = os.environ.get("INTEGRATION_EXCHANGE", "bookstore.events")

PAYMENT_GATEWAY = os.environ.get("PAYMENT_GATEWAY", "apps.write.orders.payments.TestGateway")
# Where the test gateway keeps its ledger, shared by every process (else in each one's memory).
PAYMENT_TEST_LEDGER_URL = os.environ.get("PAYMENT_TEST_LEDGER_URL", CACHE_URL)
# A payment, capture or refund whose answer is not recorded this long after it was sent is
# settled by recovery, which asks the gateway what it did (apps/write/orders/services.py).
PAYMENT_RECOVERY_AFTER_SECONDS = int(os.environ.get("PAYMENT_RECOVERY_AFTER_SECONDS", "60"))

# In development, order e-mails are written as files under var/mail/ to read at leisure.
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = BASE_DIR / "var" / "mail"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "shop@bookstore.example")
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
# An unsent customer e-mail is sent again by the beat's recovery once no one has tried it for
# this long (apps/write/orders/emails.py): longer than a send may take.
EMAIL_RETRY_AFTER_SECONDS = int(os.environ.get("EMAIL_RETRY_AFTER_SECONDS", "60"))

# Every line carries the correlation id, causation id, command, actor and projector it was
# written under (apps/cqrs/logs.py). LOG_FORMAT=json writes one JSON object per line, for a log
# shipper; the default plain format is for people. Celery's workers use this configuration too
# (CELERY_WORKER_HIJACK_ROOT_LOGGER). LOG_EVENTS_LEVEL=WARNING silences the line per event.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'text' or 'json'.")
_LOG_FIELDS = "correlation_id causation_id command actor projector"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "scope": {"()": "apps.cqrs.logs.ScopeFilter"},
        "one_line": {"()": "config.cache.OneLine"},
    },
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s cid=%(correlation_id)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": f"%(asctime)s %(levelname)s %(name)s %(process)d %(message)s {_LOG_FIELDS}",
            "style": "%",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["scope"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "cqrs.events": {"level": os.environ.get("LOG_EVENTS_LEVEL", "INFO")},
        "config.cache": {"filters": ["one_line"]},
        "django.db.backends": {"level": "WARNING"},
        # One line per task succeeded drowns everything else at the rate projectors are woken.
        "celery.app.trace": {"level": "WARNING"},
        # django-axes announces itself in every process at INFO; lockouts are WARNING.
        "axes": {"level": "WARNING"},
    },
}
