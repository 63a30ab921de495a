"""Settings of the legacy monolith, all taken from the environment.

Every variable is documented in ``docs/reference/monolith.md``. Nothing else in
the monolith reads the environment, and no module reads settings at import time.

``DATABASE_URL``                 database (default: SQLite at var/monolith.sqlite3)
``MONOLITH_DB_CONN_MAX_AGE``     seconds a connection is reused (default 60)
``MONOLITH_DB_TIMEOUT``          SQLite: seconds a write waits for the lock (default 20)
``MONOLITH_SECRET_KEY``          secret key (default: an insecure dev key)
``MONOLITH_DEBUG``               1/true/yes/on to enable DEBUG (default off)
``MONOLITH_ALLOWED_HOSTS``       comma-separated host names
``MONOLITH_CSRF_TRUSTED_ORIGINS`` comma-separated origins (scheme://host[:port])
``MONOLITH_LOG_LEVEL``           root log level (default INFO)
``MONOLITH_STATIC_ROOT``         collectstatic target (default var/static)
``MONOLITH_OIDC_ISSUER``         OIDC issuer URL (default: derived from the request)
``MONOLITH_OIDC_KEYS_DIR``       OIDC signing keys (default var/oidc/keys)
``MONOLITH_OIDC_SECRETS_DIR``    OIDC client secrets (default var/oidc/clients)
``MONOLITH_OIDC_ACCESS_TOKEN_TTL`` access token lifetime, seconds (default 300)
``MONOLITH_OIDC_KEY_PREPUBLISH`` seconds a new key is published before it signs (120)
``MONOLITH_OIDC_KEY_GRACE``      seconds a replaced key stays published (default 600)
``MONOLITH_CHECKOUT``            storefront checkout: local (default) or orders-service
``MONOLITH_ORDERS_URL``          the orders service (default http://127.0.0.1:8104)
``MONOLITH_ORDERS_TIMEOUT``      seconds a call to the orders service may take (30)
``MONOLITH_IDENTITY_KEY``        the monolith's Ed25519 key for identity tokens
``STRANGLER_KEYS_DIR``, ``STRANGLER_IDENTITY_JWKS`` where it and the JWKS live
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.conf import global_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    value = os.environ.get(name, default)
    return [item.strip() for item in value.split(",") if item.strip()]


SECRET_KEY = os.environ.get(
    "MONOLITH_SECRET_KEY",
    "django-insecure-dev-only-key-set-MONOLITH_SECRET_KEY-in-production",
)
DEBUG = _env_bool("MONOLITH_DEBUG")
# The strangler proxy preserves the client's Host header, so these are the names
# clients use, not the proxy's upstream address.
ALLOWED_HOSTS = _env_list(
    "MONOLITH_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]"
)
CSRF_TRUSTED_ORIGINS = _env_list("MONOLITH_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "legacy_monolith.core",
    "legacy_monolith.accounts",
    "legacy_monolith.catalog",
    "legacy_monolith.inventory",
    "legacy_monolith.outbox",
    # MONOLITH-B: orders, payments and storefront apps go below this line.
    "legacy_monolith.orders",
    "legacy_monolith.payments",
    "legacy_monolith.storefront",
    # The OpenID Connect provider (docs/reference/oidc-provider.md).
    "oauth2_provider",
    "legacy_monolith.oidc",
]

MIDDLEWARE = [
    # One JSON line per request, with the trace id (legacy_monolith/core/tracing.py).
    "legacy_monolith.core.tracing.AccessLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /internal/... needs the internal credential, checked before anything else.
    "legacy_monolith.outbox.internal.InternalCallerMiddleware",
    # WhiteNoise serves /static/ itself, so the monolith needs no web server in
    # front and static files work under ASGI with DEBUG off.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Which data version a read was answered from, for the proxy's parity.
    "legacy_monolith.outbox.versions.DataVersionMiddleware",
]

ROOT_URLCONF = "legacy_monolith.urls"
WSGI_APPLICATION = "legacy_monolith.wsgi.application"
ASGI_APPLICATION = "legacy_monolith.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "legacy_monolith" / "templates"],
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

_DEFAULT_DATABASE_URL = f"sqlite:///{VAR_DIR / 'monolith.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or _DEFAULT_DATABASE_URL,
        conn_max_age=int(os.environ.get("MONOLITH_DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if not os.environ.get("DATABASE_URL"):
        VAR_DIR.mkdir(exist_ok=True)
    # Several processes share the file: this server, `strangler relay`,
    # `strangler backfill` (docs/reference/sync.md). Without care a writer gets
    # "database is locked":
    # - IMMEDIATE: a deferred transaction cannot upgrade its read lock while
    #   another connection writes (and then fails at once, without waiting);
    #   IMMEDIATE takes the write lock up front and waits for it. It also keeps
    #   checkouts serialised, since SQLite ignores select_for_update.
    # - WAL: readers (the relay's polls) never block a writer, nor a writer
    #   them; NORMAL sync is the documented pairing, and commits stay short.
    # - timeout: how long a writer waits for the write lock.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": float(os.environ.get("MONOLITH_DB_TIMEOUT", "20")),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
else:
    # Each test process gets its own fresh database, so a CI run never trips
    # over a database left by another run or a concurrent one.
    DATABASES["default"]["TEST"] = {"NAME": f"test_strangler_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The OpenID Connect provider under /o/ (django-oauth-toolkit with
# legacy_monolith.oidc): RS256 keys from a directory (rotation without restart),
# access tokens as signed JWTs, PKCE required. docs/reference/oidc-provider.md.
OIDC_KEYS_DIR = Path(os.environ.get("MONOLITH_OIDC_KEYS_DIR") or VAR_DIR / "oidc/keys")
OIDC_SECRETS_DIR = Path(
    os.environ.get("MONOLITH_OIDC_SECRETS_DIR") or VAR_DIR / "oidc/clients"
)
OIDC_KEY_PREPUBLISH_SECONDS = float(
    os.environ.get("MONOLITH_OIDC_KEY_PREPUBLISH", "120")
)
OIDC_KEY_GRACE_SECONDS = float(os.environ.get("MONOLITH_OIDC_KEY_GRACE", "600"))
# The storefront's checkout, by branch by abstraction (legacy_monolith/orders/
# checkout_port.py): "local" runs this database's transaction, "orders-service"
# the saga of the orders service. Read at startup: switching is a restart.
MONOLITH_CHECKOUT = os.environ.get("MONOLITH_CHECKOUT", "").strip() or "local"
if MONOLITH_CHECKOUT not in ("local", "orders-service"):
    raise ValueError(
        f"MONOLITH_CHECKOUT={MONOLITH_CHECKOUT!r}: use local or orders-service"
    )
MONOLITH_ORDERS_URL = os.environ.get(
    "MONOLITH_ORDERS_URL", "http://127.0.0.1:8104"
).rstrip("/")
MONOLITH_ORDERS_TIMEOUT = float(os.environ.get("MONOLITH_ORDERS_TIMEOUT", "30"))
# The key the monolith signs X-Strangler-Identity tokens with when it calls a
# service for a customer, and the JWKS the services trust (the same variables
# as theirs): legacy_monolith/orders/service_identity.py.
_KEYS_DIR = Path(os.environ.get("STRANGLER_KEYS_DIR") or VAR_DIR / "keys")
MONOLITH_IDENTITY_KEY = Path(
    os.environ.get("MONOLITH_IDENTITY_KEY") or _KEYS_DIR / "monolith.ed25519.pem"
)
MONOLITH_IDENTITY_JWKS = Path(
    os.environ.get("STRANGLER_IDENTITY_JWKS") or _KEYS_DIR / "jwks.json"
)
# DOT's models (named so migrations can depend on them).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"


from django.utils.functional import lazy  # noqa: E402


def _oidc_signing_pem() -> str:
    from legacy_monolith.oidc.keys import current_pem

    return current_pem()


OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    # DOT reads one key; this one is re-evaluated on each use (the ring's current).
    "OIDC_RSA_PRIVATE_KEY": lazy(_oidc_signing_pem, str)(),
    "OIDC_ISS_ENDPOINT": os.environ.get("MONOLITH_OIDC_ISSUER", ""),
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(
        os.environ.get("MONOLITH_OIDC_ACCESS_TOKEN_TTL", "300")
    ),
    "ACCESS_TOKEN_GENERATOR": "legacy_monolith.oidc.tokens.access_token_generator",
    "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
    "ROTATE_REFRESH_TOKEN": True,
    "OAUTH2_VALIDATOR_CLASS": "legacy_monolith.oidc.validators.ShopValidator",
    "SCOPES_BACKEND_CLASS": "legacy_monolith.oidc.scopes.DatabaseScopes",
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "CLIENT_SECRET_HASHER": "client_secret_pbkdf2_sha256",
}
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's, plus the one for OIDC client secrets (legacy_monolith/oidc/hashers.py);
# users' passwords keep the first.
PASSWORD_HASHERS = [
    *global_settings.PASSWORD_HASHERS,
    "legacy_monolith.oidc.hashers.ClientSecretHasher",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("MONOLITH_STATIC_ROOT") or VAR_DIR / "static")
# WhiteNoise warns at start-up about a missing STATIC_ROOT even when it serves
# through the finders, and the test suite turns warnings into errors.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "legacy_monolith" / "static"]
# Serve straight from the apps' static directories: the demo needs no
# collectstatic step. Production deployments run collectstatic and turn it off.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    # Token first: an anonymous API request gets 401 with
    # "WWW-Authenticate: Token" rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        # Access tokens of the shop's own OpenID Connect provider (/o/): apps
        # that signed in with PKCE call the API with them.
        "legacy_monolith.oidc.authentication.ProviderTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "legacy_monolith.api.StandardPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "legacy_monolith.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Legacy shop API",
    "DESCRIPTION": "The monolith's JSON API, the contract extracted services match.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # MONOLITH-B: several models have a "status" field; name their enums.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "legacy_monolith.orders.models.OrderStatus",
        "PaymentStatusEnum": "legacy_monolith.payments.models.PaymentStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "legacy_monolith.core.jsonlog.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            # The server logs to stdout; the toolkit's commands that load the
            # monolith (backfill, reconcile, ownership) set stderr, so their
            # own output on stdout stays clean.
            "stream": "ext://sys."
            + (
                "stderr"
                if os.environ.get("MONOLITH_LOG_STREAM") == "stderr"
                else "stdout"
            ),
            "formatter": "json",
        }
    },
    "root": {
        "handlers": ["stdout"],
        "level": os.environ.get("MONOLITH_LOG_LEVEL", "INFO").upper(),
    },
}
