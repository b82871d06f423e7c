"""Settings, read from the environment (or `.env`) with django-environ. `.env.example`
documents every variable."""

import hashlib
from pathlib import Path

import environ
from csp.constants import NONE, SELF

from hosting.database import localdb

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values already in the environment win over the file; ENV_FILE picks another file.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))

DEBUG = env.bool("DEBUG", default=False)
# No default secret in production: without SECRET_KEY and DEBUG off, startup fails.
SECRET_KEY = env("SECRET_KEY") if not DEBUG else env("SECRET_KEY", default="dev-only-insecure-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "procrastinate.contrib.django",
    "hosting",
    "accounts",
    "billing",
    "servers",
    "support",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After static files (the maintenance page's stylesheet must load), before anything
    # that reads the session or the user.
    "hosting.maintenance.DatabaseUnavailableMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Right after authentication, before anything reads a customer's rows.
    "hosting.tenant.TenantScopeMiddleware",
    "accounts.middleware.AbsoluteSessionLifetimeMiddleware",
    "accounts.middleware.StaffRequireMFAMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "hosting.urls"
WSGI_APPLICATION = "hosting.wsgi.application"

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
                "hosting.context_processors.site",
            ],
            # Django's date filter, faster for the formats the pages use (see the module).
            "builtins": ["hosting.templatetags.dates"],
        },
    },
]

# Database: DATABASE_URL (postgres:// or postgresql://, ?sslmode= passes through); else
# its parts, DB_HOST and the rest; else the project-local cluster that `make run` /
# `make test` start. Django's psycopg pool.
if env.str("DATABASE_URL", default="") or not env.str("DB_HOST", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL", default=localdb.url())}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": env.str("DB_HOST"),
            "PORT": env.int("DB_PORT", default=5432),
            "NAME": env.str("DB_NAME", default="hosting"),
            "USER": env.str("DB_USER", default="hosting"),
            "PASSWORD": env.str("DB_PASSWORD", default=""),
            "OPTIONS": {
                # verify-full with DB_SSLROOTCERT: encrypted, and to the right server.
                key: value
                for key, value in {
                    "sslmode": env.str("DB_SSLMODE", default=""),
                    "sslrootcert": env.str("DB_SSLROOTCERT", default=""),
                }.items()
                if value
            },
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool owns connection reuse
# Seconds to wait for PostgreSQL before a page answers the maintenance page: libpq's
# connect_timeout, and how long a request waits for a pooled connection.
DB_CONNECT_TIMEOUT = env.int("DB_CONNECT_TIMEOUT", default=3)
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = DB_CONNECT_TIMEOUT
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)


def _pool_connection_reset(conn):
    # Imported when a connection first goes back, not while settings load (it needs them).
    from hosting.tenant import connection_reset

    connection_reset(conn)


if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=DB_CONNECT_TIMEOUT),
        # Clears a returned connection's settings, the tenant scope above all.
        "reset": _pool_connection_reset,
    }
# With the pool: one empty round trip as a connection leaves it (psycopg's
# check_connection), so a connection the server dropped (a restart, an outage) is
# replaced instead of failing the request, and an outage is seen before the request
# starts (hosting.maintenance).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A cache that every gunicorn worker and host shares, so rate limits and lockouts hold.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "django_cache",
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "landing"

# django-allauth: email is the login, confirmed before the customer area opens.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = False
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False  # keep this session, end the others
ACCOUNT_REAUTHENTICATION_REQUIRED = True
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Hosting] "
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW = env("LOGIN_FAILURE_WINDOW", default="15m")
ACCOUNT_RATE_LIMITS = {
    # After LOGIN_FAILURE_LIMIT failures on one account within the window the account is
    # locked, whatever the password, until the window passes.
    "login_failed": f"30/m/ip,{LOGIN_FAILURE_LIMIT}/{LOGIN_FAILURE_WINDOW}/key",
    "login": env("RATE_LIMIT_LOGIN", default="30/m/ip"),
    "signup": env("RATE_LIMIT_SIGNUP", default="20/m/ip"),
    "reset_password": env("RATE_LIMIT_RESET_PASSWORD", default="20/m/ip,5/m/key"),
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "confirm_email": "1/3m/key",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Hosting"
# Accept the code of the neighbouring 30 s period too: phone clocks drift.
MFA_TOTP_TOLERANCE = 1
STAFF_REQUIRE_MFA = env.bool("STAFF_REQUIRE_MFA", default=True)
# Row-level security's scope on every web request (hosting.tenant). Off only to measure
# what it costs: with it off every request sees every customer's rows.
TENANT_ISOLATION = env.bool("TENANT_ISOLATION", default=True)

# Sessions in the database with an absolute lifetime (not extended by activity).
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 60 * 60)
SESSION_SAVE_EVERY_REQUEST = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# Security headers; the HTTPS ones are on whenever DEBUG is off.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancer probes speak HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env("SECURE_PROXY_SSL_HEADER", default=""):
    # e.g. "HTTP_X_FORWARDED_PROTO,https" behind a proxy that terminates TLS.
    SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER"))
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF, "https://checkout.stripe.com"],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Hosting <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
STAFF_NOTIFICATION_EMAILS = env.list("STAFF_NOTIFICATION_EMAILS", default=[])
# The address customers write to for help (shown when two-factor is lost); none: no link.
SUPPORT_EMAIL = env("SUPPORT_EMAIL", default="")

# Secrets at rest: the first key encrypts, every key decrypts (rotation without loss).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# External systems; without credentials the simulators run offline.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
# Without a secret from Stripe, the simulator signs its events with one derived from
# SECRET_KEY, so a development site verifies them exactly as production does.
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="") or (
    "whsec_dev_" + hashlib.sha256(f"stripe-webhook:{SECRET_KEY}".encode()).hexdigest()[:32]
)
# Another API address (a stripe-mock style server); empty: Stripe's own.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
DIGITALOCEAN_TOKEN = env("DIGITALOCEAN_TOKEN", default="")
DIGITALOCEAN_REGION = env("DIGITALOCEAN_REGION", default="nyc3")
DIGITALOCEAN_IMAGE = env("DIGITALOCEAN_IMAGE", default="ubuntu-24-04-x64")
# The panel's own SSH private key (OpenSSH format): its public half goes on every server.
PANEL_SSH_KEY_FILE = env("PANEL_SSH_KEY_FILE", default="")
# The offline DigitalOcean stand-in: seconds until a droplet is active, and the operations
# that fail on purpose (create, get, power, destroy) to show the failure paths.
SIMULATED_PROVIDER_BOOT_SECONDS = env.float("SIMULATED_PROVIDER_BOOT_SECONDS", default=5.0)
SIMULATED_PROVIDER_FAILURES = env.list("SIMULATED_PROVIDER_FAILURES", default=[])
# Seconds a simulated power action (start, shutdown, reboot) stays in progress.
SIMULATED_PROVIDER_ACTION_SECONDS = env.float("SIMULATED_PROVIDER_ACTION_SECONDS", default=3.0)
# Seconds a simulated create takes to answer once the droplet exists (a drill's window).
SIMULATED_PROVIDER_CREATE_SECONDS = env.float("SIMULATED_PROVIDER_CREATE_SECONDS", default=0.0)

# Provisioning: attempts per job before giving up (server failed, payment refunded), the
# first retry's wait (doubling each time), how often to look at a booting droplet, and
# how long a server may stay `provisioning` before it is failed and refunded.
PROVISION_ATTEMPTS = env.int("PROVISION_ATTEMPTS", default=5)
PROVISION_RETRY_SECONDS = env.float("PROVISION_RETRY_SECONDS", default=5.0)
PROVISION_POLL_SECONDS = env.float("PROVISION_POLL_SECONDS", default=2.0)
PROVISION_TIMEOUT = env.int("PROVISION_TIMEOUT", default=30 * 60)

# Power actions and password resets: how often the provider's action is looked at, how
# long a graceful shutdown may take before the power is cut, and how long any action may
# stay in progress before it is failed (so a button is never stuck "in progress").
POWER_POLL_SECONDS = env.float("POWER_POLL_SECONDS", default=2.0)
STOP_GRACE_SECONDS = env.int("STOP_GRACE_SECONDS", default=60)
SERVER_ACTION_TIMEOUT = env.int("SERVER_ACTION_TIMEOUT", default=10 * 60)

# Jobs the worker runs at once: a deployment holds one for up to DEPLOY_TIMEOUT, so a
# single slot would make every mail and provisioning wait behind it. Each running job
# holds a database connection: keep it below DB_POOL_MAX_SIZE.
WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=4)
# A worker's heartbeat, and how long without one before it is taken for dead: its jobs
# are then retried by the recovery jobs (hosting.tasks.jobs_recover_stalled, and
# servers.tasks.deployments_recover), which run on JOBS_RECOVERY_SCHEDULE. The worker
# killed drill shortens all three; a sixth cron field is seconds ("* * * * * */1").
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=10.0)
WORKER_STALLED_SECONDS = env.float("WORKER_STALLED_SECONDS", default=30.0)
JOBS_RECOVERY_SCHEDULE = env.str("JOBS_RECOVERY_SCHEDULE", default="* * * * *")
PROCRASTINATE_WORKER_DEFAULTS = {
    "concurrency": WORKER_CONCURRENCY,
    "update_heartbeat_interval": WORKER_HEARTBEAT_SECONDS,
    "stalled_worker_timeout": WORKER_STALLED_SECONDS,
}
# How many of each process run against the database, for the connection budget that
# `check_db` prints and a system check compares with the server's max_connections:
# gunicorn's workers (read by hosting/gunicorn_conf.py too) and worker processes.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=3)
WORKER_PROCESSES = env.int("WORKER_PROCESSES", default=1)

# Deployments: the SSH port of our servers, the directory the code goes to on the server,
# and the longest one deployment may run before it is stopped and failed.
SERVER_SSH_PORT = env.int("SERVER_SSH_PORT", default=22)
SSH_CONNECT_TIMEOUT = env.float("SSH_CONNECT_TIMEOUT", default=15.0)
DEPLOY_APP_DIR = env("DEPLOY_APP_DIR", default="/srv/app")
DEPLOY_TIMEOUT = env.int("DEPLOY_TIMEOUT", default=15 * 60)
# Where deployments to simulated servers clone to (one directory per server).
DEPLOY_WORKSPACE_DIR = Path(
    env("DEPLOY_WORKSPACE_DIR", default=str(BASE_DIR / "var" / "workspaces"))
)
# "ssh", "local", or empty: SSH for real servers, a local workspace for simulated ones.
SERVER_RUNNER = ""
# Custom domains: the resolvers DNS checks ask ("ip" or "ip:port"), how long a lookup may
# take, the CAs a CAA record must allow for our servers' certificates (Caddy uses Let's
# Encrypt), extra trust roots for certificate checks (tests: the test CA), the timeout of
# a TLS check, and how many domains one server may carry.
DNS_RESOLVERS = env.list("DNS_RESOLVERS", default=["1.1.1.1", "8.8.8.8"])
DNS_TIMEOUT = env.float("DNS_TIMEOUT", default=4.0)
ACME_CAA_IDENTITIES = env.list("ACME_CAA_IDENTITIES", default=["letsencrypt.org"])
TLS_EXTRA_CA_FILE = env("TLS_EXTRA_CA_FILE", default="")
TLS_CHECK_TIMEOUT = env.float("TLS_CHECK_TIMEOUT", default=5.0)
DOMAINS_PER_SERVER = env.int("DOMAINS_PER_SERVER", default=20)

# Billing: days a failed renewal may stay unpaid before the server is suspended, and days
# a canceled subscription's server is kept (suspended) before it is deleted. Fractions are
# for drills: 0.002 is about three minutes.
BILLING_GRACE_DAYS = env.float("BILLING_GRACE_DAYS", default=7)
DELETION_GRACE_DAYS = env.float("DELETION_GRACE_DAYS", default=14)
# The simulated subscriptions' billing period; 0 is a calendar month, as Stripe's monthly
# price. A short one (60) shows renewals in `make run` within minutes.
SIMULATED_BILLING_PERIOD_SECONDS = env.int("SIMULATED_BILLING_PERIOD_SECONDS", default=0)

# Support: how many tickets and replies one customer may send per hour.
SUPPORT_RATE_LIMIT = env.int("SUPPORT_RATE_LIMIT", default=20)
# A resolved ticket nobody wrote on for this many days is closed.
SUPPORT_AUTOCLOSE_DAYS = env.int("SUPPORT_AUTOCLOSE_DAYS", default=7)
# Ticket mails ask for replies at support+<ticket token>@<this domain>; the mailbox behind
# it is read over IMAP (imaps://user:password@host/INBOX) every minute when the URL is set.
SUPPORT_EMAIL_DOMAIN = env(
    "SUPPORT_EMAIL_DOMAIN", default=SUPPORT_EMAIL.rpartition("@")[2] or "localhost"
)
SUPPORT_IMAP_URL = env("SUPPORT_IMAP_URL", default="")
SUPPORT_IMAP_TIMEOUT = env.float("SUPPORT_IMAP_TIMEOUT", default=30.0)

# The port certificate checks connect to (tests: the test Caddy's).
TLS_CHECK_PORT = 443

# Tests and drills only: also accept file:// git URLs (a local bare repository); an
# environment setting so a drill's worker process can deploy one.
DEPLOY_ALLOW_LOCAL_GIT_URLS = env.bool("DEPLOY_ALLOW_LOCAL_GIT_URLS", default=False)

BACKUP_DIR = Path(env("BACKUP_DIR", default=str(BASE_DIR / "backups")))
# The scheduled backup job (hosting/tasks.py) runs only when BACKUP_DIR is set. Its cron
# is read when the tasks are imported: a change needs a worker restart.
BACKUP_SCHEDULED = bool(env.str("BACKUP_DIR", default=""))
BACKUP_SCHEDULE = env.str("BACKUP_SCHEDULE", default="0 2 * * *")
BACKUP_KEEP = env.int("BACKUP_KEEP", default=14)
BACKUP_MAX_AGE_DAYS = env.int("BACKUP_MAX_AGE_DAYS", default=30)
# Staff are mailed (once per incident) when the newest verified backup is older than this.
BACKUP_STALE_HOURS = 26


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_tokens": {"()": "hosting.log_redaction.RedactTokensFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own loggers come with handlers of their own (a console under DEBUG,
        # mail_admins) that would print request URLs unredacted: replace them with none,
        # so their records reach the root's redacting handler only.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # runserver's request lines, through the same redacting handler.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "procrastinate": {"level": env("PROCRASTINATE_LOG_LEVEL", default="WARNING")},
        # asyncssh logs every connection, channel and command at INFO.
        "asyncssh": {"level": "WARNING"},
    },
}
CSRF_FAILURE_VIEW = "hosting.views.csrf_failure"

# Lets several test runs share one PostgreSQL server side by side.
if env("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}

# How many reverse proxies in front of the app append to X-Forwarded-For (0: trust none).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
