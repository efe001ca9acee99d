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
    "notifications",
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
    # A request that cannot reach the database answers 503 with Retry-After, never 500 (enreach/outage.py).
    "enreach.outage.DatabaseOutageMiddleware",
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
    # A database host that drops packets must not hold a request until gunicorn's timeout kills the worker.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
# While the database cannot be reached, requests answer 503 with this Retry-After (seconds); see enreach/outage.py.
DATABASE_RETRY_AFTER = env.int("DATABASE_RETRY_AFTER", default=10)
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
    "ENUM_NAME_OVERRIDES": {
        "ExportRunStatusEnum": "exports.models.ExportRun.Status",
        "ChannelKindEnum": "notifications.models.Channel.Kind",
        # An object's change (added, changed, removed): one name, whichever endpoint the generator meets first.
        "ChangeEnum": "exports.models.ExportChange.Change",
    },
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
# Probes from the host itself speak plain HTTP to gunicorn: the health check and the metrics are never redirected to
# HTTPS (the metrics still need METRICS_TOKEN when it is set). Regular expressions over the path without its "/".
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^api/health/$", r"^metrics$"])
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
        # At DEBUG urllib3 logs every request line, path included: a webhook's URL is a credential (Slack, Teams).
        "urllib3.connectionpool": {"level": "INFO"},
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
# Retention of the files under ENREACH_DATA_DIR/runs/: the newest EXPORT_KEEP_RUNS successful runs' files are kept,
# and so are those of every run that finished less than EXPORT_KEEP_HOURS ago, however many runs started since.
EXPORT_KEEP_RUNS = max(1, env.int("EXPORT_KEEP_RUNS", default=10))
EXPORT_KEEP_HOURS = max(0.0, env.float("EXPORT_KEEP_HOURS", default=24.0))
# Starting exports from the API, the page or the admin: at most this many new runs per user, and in all, per window
# ("<count>/<second|minute|hour|day>"; empty: no limit). Over it, the API answers 429 with Retry-After and the page
# says why. The schedule and `manage.py netbox_update` are not limited.
EXPORT_START_LIMIT_USER = env.str("EXPORT_START_LIMIT_USER", default="10/hour")
EXPORT_START_LIMIT_GLOBAL = env.str("EXPORT_START_LIMIT_GLOBAL", default="30/hour")
# What each run changed (every object's history on /cmdb/<dataset>/<id>/) is kept this many days; 0 keeps it for ever.
EXPORT_CHANGES_KEEP_DAYS = max(0, env.int("EXPORT_CHANGES_KEEP_DAYS", default=365))
# Incremental runs fall back to a full fetch when the last full one is older than this: NetBox does not bump a
# device's last_updated when a related object (rack, platform, IP address...) is renamed.
EXPORT_FULL_EVERY_HOURS = env.float("EXPORT_FULL_EVERY_HOURS", default=24.0)
# Prefix CSV cells starting with = + - @, a tab or a carriage return with an apostrophe (people who open CSVs in Excel).
EXPORT_CSV_EXCEL_SAFE = env.bool("EXPORT_CSV_EXCEL_SAFE", default=False)
# Workbook column order: comma-separated names, or the path of an .xlsx whose first row is the order.
EXPORT_WORKBOOK_COLUMNS = env.list("EXPORT_WORKBOOK_COLUMNS", default=[])
# Fork: a full run streams its VMs in a child while the devices stream in the export process, and a child writes the
# workbook while the export process writes the rest: faster on two or more cores. Linux only.
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
# A run queued for this long whose task is in no queue (the broker lost it: Redis restarted without persistence) is
# sent again by the sweeper, which runs every minute: such a run starts within about EXPORT_QUEUED_LOST_AFTER + 60 s.
EXPORT_QUEUED_LOST_AFTER = env.int("EXPORT_QUEUED_LOST_AFTER", default=30)
# A run that cannot record its result because the database is unreachable waits for it this long (seconds), keeping
# its heartbeat in the cache meanwhile, before it gives up.
EXPORT_DATABASE_WAIT = env.int("EXPORT_DATABASE_WAIT", default=900)
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
# --- CMDB table -------------------------------------------------------------------------------------------------
# A request finding a run's CMDB table file missing (a run from before the file was written after each run, or a
# file deleted) waits this many seconds for it to be built, then answers 503 "being prepared" while the build goes
# on; keep it well below the web server's timeout (GUNICORN_TIMEOUT).
CMDB_TABLE_BUILD_WAIT = env.float("CMDB_TABLE_BUILD_WAIT", default=20.0)

# Set by `make run` when it started the demo NetBox because NETBOX_URL was empty.
NETBOX_DEMO = env.bool("ENREACH_DEMO_NETBOX", default=False)

# --- Accounts ------------------------------------------------------------------------------------------------------
# Fernet key(s) encrypting global keys at rest: comma-separated, the first encrypts, all decrypt. Without it, DEBUG
# derives a development key from SECRET_KEY; production refuses to read or store global keys.
ENREACH_ENCRYPTION_KEY = env.str("ENREACH_ENCRYPTION_KEY", default="")
# Decided here, not from settings.DEBUG at run time: the test runner turns DEBUG off after loading the settings.
ENREACH_ENCRYPTION_DEV_FALLBACK = DEBUG
# Sign-in (page and admin) with a limit on failures per username + address (accounts/throttling.py). The directory
# backends come first and do nothing until AUTH_LDAP_SERVER_URI / OIDC_DISCOVERY_URL are set; the local one after
# them keeps local accounts (break-glass admins) working when the directory is down.
AUTHENTICATION_BACKENDS = [
    "integrations.directory.ldap.DirectoryLDAPBackend",
    "accounts.backends.RateLimitedModelBackend",
    "integrations.directory.backends.OIDCBackend",
]
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=300)
# Sign-in attempts per address across usernames (a success gives its attempt back).
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
# Failed API token authentications per client address (and per token prefix) before failures answer 429; a valid
# token always works.
TOKEN_FAILURE_LIMIT = env.int("TOKEN_FAILURE_LIMIT", default=30)
TOKEN_FAILURE_WINDOW = env.int("TOKEN_FAILURE_WINDOW", default=300)

# --- Directory sign-in: LDAP / Active Directory (integrations/directory/ldap.py, django-auth-ldap) --------------
# Off while AUTH_LDAP_SERVER_URI is empty. ldap://host:389 (with AUTH_LDAP_START_TLS) or ldaps://host:636.
AUTH_LDAP_SERVER_URI = env.str("AUTH_LDAP_SERVER_URI", default="")
# The service account that searches for users and groups; empty binds anonymously. The password may instead be the
# global key "ldap" (admin), which wins over the environment.
AUTH_LDAP_BIND_DN = env.str("AUTH_LDAP_BIND_DN", default="")
AUTH_LDAP_BIND_PASSWORD = env.str("AUTH_LDAP_BIND_PASSWORD", default="")
AUTH_LDAP_START_TLS = env.bool("AUTH_LDAP_START_TLS", default=False)
# PEM file of the CA that signed the server's certificate (StartTLS and ldaps://); empty: the system's CAs.
AUTH_LDAP_CA_FILE = env.str("AUTH_LDAP_CA_FILE", default="")
AUTH_LDAP_USER_SEARCH_BASE = env.str("AUTH_LDAP_USER_SEARCH_BASE", default="")
# %(user)s is the username typed on the sign-in page. Active Directory:
# (&(sAMAccountName=%(user)s)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))
AUTH_LDAP_USER_SEARCH_FILTER = env.str("AUTH_LDAP_USER_SEARCH_FILTER", default="(uid=%(user)s)")
# Which entry attribute fills which user field.
AUTH_LDAP_USER_ATTR_MAP = env.dict(
    "AUTH_LDAP_USER_ATTR_MAP", default={"first_name": "givenName", "last_name": "sn", "email": "mail"}
)
AUTH_LDAP_GROUP_SEARCH_BASE = env.str("AUTH_LDAP_GROUP_SEARCH_BASE", default="")
# groupOfNames (member: DN), groupOfUniqueNames (uniqueMember), posixGroup (memberUid), activeDirectory (group with
# member, nested groups followed), nestedGroupOfNames.
AUTH_LDAP_GROUP_TYPE = env.str("AUTH_LDAP_GROUP_TYPE", default="groupOfNames")
# role=<group DN>, separated by ";" (a role may repeat): admin=cn=cmdb-admins,ou=groups,dc=example,dc=com;...
AUTH_LDAP_ROLE_GROUPS = env.str("AUTH_LDAP_ROLE_GROUPS", default="")
# The role of a directory user in no mapped group; empty: such users are refused.
AUTH_LDAP_DEFAULT_ROLE = env.str("AUTH_LDAP_DEFAULT_ROLE", default="")
# Seconds to wait for the server (connecting and each operation): a directory that is down must not hold sign-ins.
AUTH_LDAP_TIMEOUT = env.float("AUTH_LDAP_TIMEOUT", default=5.0)

# --- Directory sign-in: OpenID Connect single sign-on (integrations/directory/oidc.py, Authlib) ---------------------
# Off while OIDC_DISCOVERY_URL is empty: https://idp.example.com/.well-known/openid-configuration
OIDC_DISCOVERY_URL = env.str("OIDC_DISCOVERY_URL", default="")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
# Or the global key "oidc" (admin), which wins over the environment.
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
# The claim holding the user's groups or roles; a dotted path reaches into objects (realm_access.roles).
OIDC_ROLES_CLAIM = env.str("OIDC_ROLES_CLAIM", default="groups")
# role=<claim value>, separated by ";", as AUTH_LDAP_ROLE_GROUPS.
OIDC_ROLE_GROUPS = env.str("OIDC_ROLE_GROUPS", default="")
OIDC_DEFAULT_ROLE = env.str("OIDC_DEFAULT_ROLE", default="")
# The claim that names the local account (then email, then sub when it is missing).
OIDC_USERNAME_CLAIM = env.str("OIDC_USERNAME_CLAIM", default="preferred_username")
# Only accounts of this Google Workspace domain (the ID token's hd claim); empty: no check.
OIDC_HOSTED_DOMAIN = env.str("OIDC_HOSTED_DOMAIN", default="")
# The provider's name on the sign-in page's button: "Sign in with <name>".
OIDC_NAME = env.str("OIDC_NAME", default="single sign-on")
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT", default=10.0)
# Send the user to the provider's end_session_endpoint on sign-out (when it advertises one).
OIDC_LOGOUT = env.bool("OIDC_LOGOUT", default=True)

# Whether users a directory manages may also have (and sign in with) a password kept here. Off: a user disabled in
# the directory cannot fall back on a local password.
DIRECTORY_ALLOW_LOCAL_PASSWORDS = env.bool("DIRECTORY_ALLOW_LOCAL_PASSWORDS", default=False)

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

# --- Notifications ---------------------------------------------------------------------------------------------------
# Where links in notifications point: the address people open the app at (https://cmdb.example.com).
ENREACH_BASE_URL = env.str("ENREACH_BASE_URL", default=f"http://{env.str('ENREACH_ADDRESS', default='127.0.0.1:8000')}")
# Django's e-mail backend from one URL (django-environ): smtp://user:password@host:25, smtp+tls://...:587,
# smtp+ssl://...:465, filemail:///path (one file per message: `make run` writes to var/mail), consolemail://.
EMAIL_URL = env.str("EMAIL_URL", default="smtp://localhost:25")
_email = env.email_url_config(EMAIL_URL)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or (465 if _email.get("EMAIL_USE_SSL") else 25)
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
if EMAIL_BACKEND.endswith("filebased.EmailBackend"):
    # filemail:///var/mail is relative to the project; filemail:////srv/mail is absolute.
    EMAIL_FILE_PATH = str(BASE_DIR / (_email["EMAIL_FILE_PATH"] or "var/mail"))
    Path(EMAIL_FILE_PATH).mkdir(parents=True, exist_ok=True)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Enreach tools <enreach@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds to wait for the mail server, and for a webhook receiver, per attempt.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
NOTIFY_TIMEOUT = env.float("NOTIFY_TIMEOUT", default=10.0)
# Failed deliveries (5xx, 429, timeouts, refused connections, SMTP 4xx) are tried again after NOTIFY_RETRY_BACKOFF
# seconds, doubling each time up to NOTIFY_RETRY_MAX_DELAY (a Retry-After is honoured, within that limit), until
# NOTIFY_MAX_ATTEMPTS attempts; permanent failures (4xx, a refused address) are not retried.
NOTIFY_MAX_ATTEMPTS = max(1, env.int("NOTIFY_MAX_ATTEMPTS", default=8))
NOTIFY_RETRY_BACKOFF = env.float("NOTIFY_RETRY_BACKOFF", default=60.0)
NOTIFY_RETRY_MAX_DELAY = env.float("NOTIFY_RETRY_MAX_DELAY", default=3600.0)
# A worker holds a delivery it is sending for NOTIFY_CLAIM_SECONDS; when it dies, the claim expires and the
# every-minute sweep queues the delivery again. A queued delivery no worker took within NOTIFY_REQUEUE_AFTER
# seconds (a lost task) is queued again too.
NOTIFY_CLAIM_SECONDS = env.int("NOTIFY_CLAIM_SECONDS", default=120)
NOTIFY_REQUEUE_AFTER = env.int("NOTIFY_REQUEUE_AFTER", default=600)
if 2 * max(NOTIFY_TIMEOUT, EMAIL_TIMEOUT) > NOTIFY_CLAIM_SECONDS:
    raise ImproperlyConfigured("NOTIFY_CLAIM_SECONDS must be at least twice NOTIFY_TIMEOUT and EMAIL_TIMEOUT.")
# Deliveries per queued task: a run's thousand notifications are queued in a fraction of a second, and each is
# still claimed, sent and recorded on its own.
NOTIFY_TASK_BATCH = max(1, env.int("NOTIFY_TASK_BATCH", default=20))
# export.stale: hours without a successful export before subscribers hear it (a subscription's "hours" wins).
NOTIFY_STALE_HOURS = env.float("NOTIFY_STALE_HOURS", default=26.0)
