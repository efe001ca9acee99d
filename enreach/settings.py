"""Enreach tools settings.

Every setting comes from the environment (or an optional ``.env`` file beside ``manage.py``) through
django-environ; ``.env.example`` lists them all. With nothing configured the app runs on embedded defaults:
SQLite under ``var/``, the django-q2 ORM broker and Django's database cache.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Only used when DEBUG is on; production refuses to start with it (see below).
INSECURE_SECRET_KEY = "django-insecure-enreach-development-key-do-not-use-in-production"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)
if not DEBUG and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value when DEBUG is off "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("ENREACH_VAR_DIR", default=str(BASE_DIR / "var")))
DATA_DIR = Path(env.str("ENREACH_DATA_DIR", default=str(VAR_DIR / "data")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_prometheus",
    "enreach",
    "accounts",
    "integrations",
    "exports",
    "quality",
    "publishing",
    "cmdb",
    "chat",
    "suggestions",
]

MIDDLEWARE = [
    "enreach.logs.RequestIdMiddleware",
    "enreach.api.ApiGuardMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "enreach.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserTimeZoneMiddleware",
    "enreach.logs.UserContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "enreach.urls"
WSGI_APPLICATION = "enreach.wsgi.application"
ASGI_APPLICATION = "enreach.asgi.application"

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
                "accounts.context_processors.preferences",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------------------
# SQLite by default; DATABASE_URL (postgres://user:pass@host:port/name) switches to PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'enreach.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The database holds password hashes and encrypted keys: only the service's user may read it. SQLite gives its
    # -wal and -shm files the database file's mode.
    if DATABASES["default"]["NAME"] != ":memory:":
        try:
            os.close(os.open(DATABASES["default"]["NAME"], os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(DATABASES["default"]["NAME"], 0o600)
        except OSError:
            pass  # not ours to change (another user's file, a read-only mount): SQLite reports what matters
    # The web server, the django-q2 workers and management commands share one file: WAL lets readers and one
    # writer work side by side, IMMEDIATE transactions avoid "database is locked" on lock upgrades.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# django-prometheus's wrappers add query and connection metrics to the same backends.
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and queue -----------------------------------------------------------------------------------------
# The database cache is shared by the web server, the workers and management commands (unlike locmem).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "enreach.cache_backends.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "enreach.cache_backends.DatabaseCache",
            "LOCATION": "enreach_cache",
            # Shared counters and named caches live here; culling would lose counts long before memory matters.
            "OPTIONS": {"MAX_ENTRIES": 100000},
        }
    }
# Named caches (integrations/caching.py) and their TTLs in seconds; CACHE_TTL_<NAME> overrides one.
CACHE_TTLS = {
    name: env.int(f"CACHE_TTL_{name.upper()}", default=default)
    for name, default in {"default": 300, "netbox": 300, "netbox_custom_fields": 300}.items()
}

# django-q2 reads this at import time. timeout (a task's hard limit) must stay below retry (when an
# unacknowledged task is handed out again), or a long export would run twice.
Q_CLUSTER = {
    "name": "enreach",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=3600),
    "retry": env.int("Q_RETRY", default=3900),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=2),
    "catch_up": False,
    "save_limit": 500,
    "label": "Task queue",
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    # Bounded waits: a Redis host that drops packets must not hold a request (starting an export) for minutes.
    # The workers' blocking pop waits 1 s, well within socket_timeout.
    _timeouts = "&".join(f"{name}={value}" for name, value in (("socket_connect_timeout", 2), ("socket_timeout", 5)))
    Q_CLUSTER["redis"] = (
        REDIS_URL if "socket_timeout" in REDIS_URL else f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}{_timeouts}"
    )
else:
    # Without an explicit broker django-q2 falls back to Redis on localhost.
    Q_CLUSTER["orm"] = "default"
if Q_CLUSTER["timeout"] >= Q_CLUSTER["retry"]:
    raise ImproperlyConfigured("Q_TIMEOUT must be lower than Q_RETRY.")

# --- Auth --------------------------------------------------------------------------------------------------
# Sessions live in the database, never in the cache: a Redis outage must not sign anybody out or in.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes unauthenticated API calls a 401, not a 403.
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular's, plus the error statuses operations really answer (enreach/api.py).
    "DEFAULT_SCHEMA_CLASS": "enreach.schema.AutoSchema",
    # JSON bodies are bounded in size and nesting; limit is capped and junk limit/offset is a 400 (enreach/api.py).
    "DEFAULT_PARSER_CLASSES": [
        "enreach.api.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "enreach.api.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Anonymous callers only reach public endpoints; failed token authentications have their own limit
    # (TOKEN_FAILURE_LIMIT, see accounts/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": env.str("THROTTLE_ANON_RATE", default="120/minute")},
}
# Bounded API input: the largest page (limit), JSON body and JSON nesting accepted.
API_MAX_LIMIT = env.int("API_MAX_LIMIT", default=500)
API_JSON_MAX_BYTES = env.int("API_JSON_MAX_BYTES", default=2_621_440)
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
SPECTACULAR_SETTINGS = {
    "TITLE": "Enreach tools API",
    "DESCRIPTION": "NetBox to CMDB exports, accounts and publishing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Several models have a "status": give each choice set its own schema name.
    # Swagger UI is served from drf-spectacular-sidecar's static files: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False, "tryItOutEnabled": False, "deepLinking": True},
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"ExportRunStatusEnum": "exports.models.ExportRun.Status"},
}

# /metrics is open unless METRICS_TOKEN is set; then scrapers send "Authorization: Bearer <token>".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# prometheus_client's multiprocess mode (gunicorn.conf.py sets it for the web workers; the queue workers need the same
# directory in their environment): every process writes its counts there and /metrics adds them all up.
if env.str("PROMETHEUS_MULTIPROC_DIR", default=""):
    Path(env.str("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)

# --- Security (production) -----------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_HTTPS_PROXY", default=False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
X_FRAME_OPTIONS = "DENY"
# Self only: no inline script or style, no other hosts (enreach/security.py). Empty sends no policy.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Reverse proxies whose X-Forwarded-For is believed, for the client address of rate limits and the audit trail:
# empty (none: REMOTE_ADDR is the client), a number of proxies in front of the app ("1"), or their networks
# ("10.0.0.0/8,127.0.0.1").
TRUSTED_PROXIES = env.str("TRUSTED_PROXIES", default="")

# --- I18n, static ----------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))

# --- Logging ----------------------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "json": one JSON object per line (for log shippers); "text": readable lines. Both carry the request id, user,
# run id and step, and both redact secrets.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "enreach.logs.ContextFilter"}},
    "formatters": {
        "text": {"()": "enreach.logs.TextFormatter"},
        "json": {"()": "enreach.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # django-q2 configures its own handler; send its records through ours only.
        "django-q": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- Integrations -------------------------------------------------------------------------------------------------
NETBOX_URL = env.str("NETBOX_URL", default="")
NETBOX_TOKEN = env.str("NETBOX_TOKEN", default="")
NETBOX_VERIFY_TLS = env.bool("NETBOX_VERIFY_TLS", default=True)
NETBOX_TIMEOUT = env.float("NETBOX_TIMEOUT", default=60.0)
NETBOX_EXTRA_HEADERS = env.str("NETBOX_EXTRA_HEADERS", default="")
NETBOX_PAGE_SIZE = env.int("NETBOX_PAGE_SIZE", default=1000)
NETBOX_WORKERS = env.int("NETBOX_WORKERS", default=4)
# Attempts after the first on connection errors, 429 and 5xx, waiting NETBOX_BACKOFF * 2^n s (or Retry-After).
NETBOX_RETRIES = env.int("NETBOX_RETRIES", default=4)
NETBOX_BACKOFF = env.float("NETBOX_BACKOFF", default=0.5)

# Bootstrap admin account, created by `manage.py ensure_admin` when no admin exists yet.
ENREACH_ADMIN_USERNAME = env.str("ENREACH_ADMIN_USERNAME", default="admin")
ENREACH_ADMIN_PASSWORD = env.str("ENREACH_ADMIN_PASSWORD", default="")

# --- Exports -----------------------------------------------------------------------------------------------------
# Folders of the newest N successful runs are kept under ENREACH_DATA_DIR/runs/.
EXPORT_KEEP_RUNS = max(1, env.int("EXPORT_KEEP_RUNS", default=10))
# Incremental runs fall back to a full fetch when the last full one is older than this: NetBox does not bump a
# device's last_updated when a related object (rack, platform, IP address...) is renamed.
EXPORT_FULL_EVERY_HOURS = env.float("EXPORT_FULL_EVERY_HOURS", default=24.0)
# Prefix CSV cells starting with = + - @, a tab or a carriage return with an apostrophe (people who open CSVs in Excel).
EXPORT_CSV_EXCEL_SAFE = env.bool("EXPORT_CSV_EXCEL_SAFE", default=False)
# Workbook column order: comma-separated names, or the path of an .xlsx whose first row is the order.
EXPORT_WORKBOOK_COLUMNS = env.list("EXPORT_WORKBOOK_COLUMNS", default=[])
# Write the merged CSV and the workbook in a forked child while the parent writes the rest: faster on two or more
# cores, at the cost of the child's copy of the rows (about 200 MB for 50,000 objects). Linux only.
EXPORT_PARALLEL_WRITE = env.bool("EXPORT_PARALLEL_WRITE", default=True)
# A cron expression ("0 2 * * *") or a number of minutes ("60"); empty: no schedule.
EXPORT_SCHEDULE = env.str("EXPORT_SCHEDULE", default="")
# The executing process refreshes its run's heartbeat every EXPORT_HEARTBEAT seconds. A running run without one for
# EXPORT_STALE_AFTER seconds is failed as abandoned (worker killed, machine gone) and queued again up to
# EXPORT_RETRY_ABANDONED times; a run no worker picked up within EXPORT_QUEUED_STALE_AFTER seconds is failed.
EXPORT_HEARTBEAT = env.float("EXPORT_HEARTBEAT", default=10.0)
EXPORT_STALE_AFTER = env.int("EXPORT_STALE_AFTER", default=60)
EXPORT_RETRY_ABANDONED = env.int("EXPORT_RETRY_ABANDONED", default=1)
EXPORT_QUEUED_STALE_AFTER = env.int("EXPORT_QUEUED_STALE_AFTER", default=600)
if EXPORT_STALE_AFTER < 3 * EXPORT_HEARTBEAT:
    raise ImproperlyConfigured("EXPORT_STALE_AFTER must be at least three EXPORT_HEARTBEAT intervals.")
# Data quality after every export (the quality app): the findings file data_quality.csv, counts per rule, and a
# "Data quality" sheet in the workbook (EXPORT_QUALITY_SHEET). The admin's quality settings override these.
EXPORT_QUALITY = env.bool("EXPORT_QUALITY", default=True)
EXPORT_QUALITY_SHEET = env.bool("EXPORT_QUALITY_SHEET", default=True)
QUALITY_WARRANTY_DAYS = env.int("QUALITY_WARRANTY_DAYS", default=90)
# Devices bought more than this many years ago are findings; 0 switches the rule off (the default).
QUALITY_HARDWARE_MAX_AGE_YEARS = env.int("QUALITY_HARDWARE_MAX_AGE_YEARS", default=0)
QUALITY_DISABLED_RULES = env.list("QUALITY_DISABLED_RULES", default=[])
# Allowed values per custom-field column, as JSON: {"DTAP state": ["Development", "Test", ...]}.
QUALITY_ALLOWED_VALUES = env.json(
    "QUALITY_ALLOWED_VALUES", default={"DTAP state": ["Development", "Test", "Acceptance", "Production"]}
)

# Set by `make run` when it started the demo NetBox because NETBOX_URL was empty.
NETBOX_DEMO = env.bool("ENREACH_DEMO_NETBOX", default=False)

# --- Accounts ------------------------------------------------------------------------------------------------------
# Fernet key(s) encrypting global keys at rest: comma-separated, the first encrypts, all decrypt. Without it, DEBUG
# derives a development key from SECRET_KEY; production refuses to read or store global keys.
ENREACH_ENCRYPTION_KEY = env.str("ENREACH_ENCRYPTION_KEY", default="")
# Decided here, not from settings.DEBUG at run time: the test runner turns DEBUG off after loading the settings.
ENREACH_ENCRYPTION_DEV_FALLBACK = DEBUG
# Sign-in (page and admin) with a limit on failures per username + address (accounts/throttling.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.RateLimitedModelBackend"]
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=300)
# Sign-in attempts per address across usernames (a success gives its attempt back).
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
# Failed API token authentications per client address (and per token prefix) before failures answer 429; a valid
# token always works.
TOKEN_FAILURE_LIMIT = env.int("TOKEN_FAILURE_LIMIT", default=30)
TOKEN_FAILURE_WINDOW = env.int("TOKEN_FAILURE_WINDOW", default=300)

# --- Chat ----------------------------------------------------------------------------------------------------------
# Any OpenAI-compatible chat-completions endpoint (OpenAI when empty, or e.g. http://localhost:11434/v1 for Ollama).
# The key is the user's own key, then the global key "chat" (which may also carry the base URL), then CHAT_API_KEY.
CHAT_API_BASE_URL = env.str("CHAT_API_BASE_URL", default="")
CHAT_API_KEY = env.str("CHAT_API_KEY", default="")
CHAT_MODEL = env.str("CHAT_MODEL", default="gpt-4o-mini")
CHAT_TEMPERATURE = env.float("CHAT_TEMPERATURE", default=0.2)
CHAT_TIMEOUT = env.float("CHAT_TIMEOUT", default=60.0)
# The openai client's own retries of connection errors, 429 and 5xx (with backoff).
CHAT_MAX_RETRIES = env.int("CHAT_MAX_RETRIES", default=2)
# History sent to the provider, in approximate tokens (characters / 4); the oldest turns are dropped first.
CHAT_HISTORY_TOKENS = env.int("CHAT_HISTORY_TOKENS", default=12000)
# Rounds of tool calls the assistant may make before it must answer.
CHAT_MAX_TOOL_ROUNDS = env.int("CHAT_MAX_TOOL_ROUNDS", default=5)
# Sessions idle for longer are deleted by a daily task; 0 keeps them forever.
CHAT_RETENTION_DAYS = env.int("CHAT_RETENTION_DAYS", default=90)

# --- Suggestions ---------------------------------------------------------------------------------------------------
# Suggestions per page on the board and in the API when the client sends no limit (the API caps limit at 200).
SUGGESTIONS_PAGE_SIZE = max(1, env.int("SUGGESTIONS_PAGE_SIZE", default=50))

# --- Publishing (Confluence, backups) ------------------------------------------------------------------------------
# Confluence: Cloud (https://example.atlassian.net/wiki, ATLASSIAN_EMAIL + API token) or Server/DC (personal
# access token, no e-mail). The global key "atlassian" (admin) overrides the token and URL.
ATLASSIAN_BASE_URL = env.str("ATLASSIAN_BASE_URL", default="")
ATLASSIAN_EMAIL = env.str("ATLASSIAN_EMAIL", default="")
ATLASSIAN_API_TOKEN = env.str("ATLASSIAN_API_TOKEN", default="")
ATLASSIAN_VERIFY_TLS = env.bool("ATLASSIAN_VERIFY_TLS", default=True)
ATLASSIAN_TIMEOUT = env.float("ATLASSIAN_TIMEOUT", default=30.0)
ATLASSIAN_RETRIES = env.int("ATLASSIAN_RETRIES", default=3)
ATLASSIAN_BACKOFF = env.float("ATLASSIAN_BACKOFF", default=1.0)
# Pages to publish to; an empty id skips that part.
CONFLUENCE_CMDB_PAGE_ID = env.str("CONFLUENCE_CMDB_PAGE_ID", default="")
CONFLUENCE_DEVICES_PAGE_ID = env.str("CONFLUENCE_DEVICES_PAGE_ID", default="")
CONFLUENCE_VMS_PAGE_ID = env.str("CONFLUENCE_VMS_PAGE_ID", default="")
# Wrap the tables in the (Stiltsoft) table-filter / table-sort macros; needs the app installed in Confluence.
CONFLUENCE_ENABLE_TABLE_FILTER = env.bool("CONFLUENCE_ENABLE_TABLE_FILTER", default=False)
CONFLUENCE_ENABLE_TABLE_SORT = env.bool("CONFLUENCE_ENABLE_TABLE_SORT", default=False)
# The columns of the devices and VMs pages' tables, in order: sources as in the column sets (contract:<column>,
# cf:<custom field>, field:<dot.path>) or headers; each shows under its header in the run's column set.
CONFLUENCE_DEVICE_TABLE_COLUMNS = env.list(
    "CONFLUENCE_DEVICE_TABLE_COLUMNS",
    default=["contract:Name", "contract:Status", "contract:Role", "contract:IP Address", "contract:OOB IP"],
)
CONFLUENCE_VM_TABLE_COLUMNS = env.list(
    "CONFLUENCE_VM_TABLE_COLUMNS",
    default=["contract:Name", "contract:Status", "contract:Device", "contract:Cluster", "contract:IP Address"],
)
# Backups of each successful run's files: a local directory, or SFTP when BACKUP_HOST is set.
BACKUP_LOCAL_PATH = env.str("BACKUP_LOCAL_PATH", default="")
BACKUP_HOST = env.str("BACKUP_HOST", default="")
BACKUP_PORT = env.int("BACKUP_PORT", default=22)
BACKUP_USER = env.str("BACKUP_USER", default="")
BACKUP_PASSWORD = env.str("BACKUP_PASSWORD", default="")
BACKUP_PRIVATE_KEY = env.str("BACKUP_PRIVATE_KEY", default="")  # path to a private key file
BACKUP_KNOWN_HOSTS = env.str("BACKUP_KNOWN_HOSTS", default="")  # empty: accept and log an unknown host key
BACKUP_REMOTE_PATH = env.str("BACKUP_REMOTE_PATH", default="enreach-backups")
BACKUP_TIMEOUT = env.float("BACKUP_TIMEOUT", default=30.0)
BACKUP_TIMESTAMPED = env.bool("BACKUP_TIMESTAMPED", default=True)  # one folder per backup (retention needs it)
BACKUP_RETENTION = max(1, env.int("BACKUP_RETENTION", default=14))
