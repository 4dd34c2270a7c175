"""Configuration read from the environment.

Everything secret or machine-specific comes from environment variables so the
same code runs on a laptop, in CI and in production. In development a random
SECRET_KEY is generated once and kept in ``instance/secret_key`` so sessions
survive restarts without anyone having to invent a key.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("MUSTER_INSTANCE_DIR", BASE_DIR / "instance"))
# Where `flask run` / `make run` serve on this machine: the public URL when none is configured.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _persistent_secret_key() -> str:
    """Return SECRET_KEY from the environment, or one generated once per instance."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _trusted_hosts(public_url: str) -> list[str]:
    """MUSTER_TRUSTED_HOSTS (comma-separated), else the public URL's host plus this machine."""
    listed = [h.strip() for h in os.environ.get("MUSTER_TRUSTED_HOSTS", "").split(",") if h.strip()]
    if listed:
        return listed
    hosts = [urlsplit(public_url).hostname or "", "localhost", "127.0.0.1"]
    return list(dict.fromkeys(h for h in hosts if h))


def _redis_url() -> str | None:
    """Redis shared by every process and machine: MUSTER_REDIS_URL, else a redis:// MUSTER_QUEUE_URL.

    Rate limits (Flask-Limiter's and the bulk mail rate) count there when it is set.
    """
    url = os.environ.get("MUSTER_REDIS_URL", "").strip()
    if url:
        return url
    queue = os.environ.get("MUSTER_QUEUE_URL", "").strip()
    return queue if queue.startswith(("redis://", "rediss://")) else None


# Flask-Mailman's file backend appends many messages to one .log file; Muster's writes one .eml each.
EML_BACKEND = "app.services.mail.eml.EmailBackend"


def _mail_backend() -> str:
    """MAIL_BACKEND if set ("file" means Muster's .eml writer), else SMTP with a MAIL_SERVER, else files."""
    backend = os.environ.get("MAIL_BACKEND", "").strip()
    if backend:
        return EML_BACKEND if backend == "file" else backend
    return "smtp" if os.environ.get("MAIL_SERVER", "").strip() else EML_BACKEND


def _default_sender(org_name: str, public_url: str) -> str:
    """The organisation's name at no-reply@ the public host (localhost when that is no domain name)."""
    host = urlsplit(public_url).hostname or "localhost"
    if "." not in host or host.replace(".", "").isdigit():
        host = "localhost"
    return f'"{org_name}" <no-reply@{host}>'


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        # Accept the common postgres:// spelling and use psycopg 3.
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://"):]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return url
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{INSTANCE_DIR / 'muster.db'}"


class Config:
    """Settings for running the app; every value can be overridden by the environment."""

    def __init__(self) -> None:
        self.SECRET_KEY = _persistent_secret_key()
        self.SQLALCHEMY_DATABASE_URI = _database_url()
        # Not pool_pre_ping (a round trip per request): idle connections are pinged instead
        # (app.database.ping_idle_connections).
        self.SQLALCHEMY_ENGINE_OPTIONS: dict = {}
        self.ORG_NAME = os.environ.get("MUSTER_ORG_NAME", "Muster Demo Movement")
        # Names of the geography levels, from the root down.
        self.UNIT_LEVELS = [
            level.strip()
            for level in os.environ.get(
                "MUSTER_UNIT_LEVELS", "province,district,constituency,ward"
            ).split(",")
            if level.strip()
        ]
        self.DEFAULT_PHONE_REGION = os.environ.get("MUSTER_PHONE_REGION", "ZM")
        self.MEMBER_NUMBER_PREFIX = os.environ.get("MUSTER_MEMBER_NUMBER_PREFIX", "M")
        # Sign-in failures count per account *and* address: after LOGIN_MAX_ATTEMPTS
        # failures that address is locked out of that account for LOGIN_LOCK_MINUTES,
        # doubling with each further failure up to LOGIN_LOCK_MAX_MINUTES (after which,
        # too, a quiet address's count is forgotten).
        self.LOGIN_MAX_ATTEMPTS = int(os.environ.get("MUSTER_LOGIN_MAX_ATTEMPTS", "5"))
        self.LOGIN_LOCK_MINUTES = int(os.environ.get("MUSTER_LOGIN_LOCK_MINUTES", "15"))
        self.LOGIN_LOCK_MAX_MINUTES = int(os.environ.get("MUSTER_LOGIN_LOCK_MAX_MINUTES", "1440"))
        self.LOGIN_RATE_LIMIT = os.environ.get("MUSTER_LOGIN_RATE_LIMIT", "20 per minute")
        # Accounts (app/services/accounts.py): how long a "Forgot password" link and an activation
        # link (first password of a member made by staff, a new staff user) work, and how often one
        # address may ask for reset links (per IP address, on top of a few mails per account an hour).
        self.RESET_HOURS = float(os.environ.get("MUSTER_RESET_HOURS", "2"))
        self.ACTIVATION_HOURS = float(os.environ.get("MUSTER_ACTIVATION_HOURS", "72"))
        self.RESET_RATE_LIMIT = os.environ.get("MUSTER_RESET_RATE_LIMIT", "5 per minute")
        # Joining through the portal (app/services/joining.py): the privacy notice's version a
        # consent is recorded against, join (and "send a new link") tries per IP address, and how
        # long an email verification link works.
        self.PRIVACY_NOTICE_VERSION = os.environ.get("MUSTER_PRIVACY_NOTICE_VERSION", "1").strip() or "1"
        self.JOIN_RATE_LIMIT = os.environ.get("MUSTER_JOIN_RATE_LIMIT", "10 per hour")
        self.VERIFY_EMAIL_HOURS = float(os.environ.get("MUSTER_VERIFY_EMAIL_HOURS", "48"))
        self.API_TOKEN_DAYS = int(os.environ.get("MUSTER_API_TOKEN_DAYS", "30"))
        # JSON request bodies are small; uploads have their own, larger MAX_CONTENT_LENGTH.
        self.API_MAX_BODY_BYTES = int(os.environ.get("MUSTER_API_MAX_BODY_BYTES", str(1024 * 1024)))
        self.PHOTO_MAX_BYTES = int(os.environ.get("MUSTER_PHOTO_MAX_BYTES", str(5 * 1024 * 1024)))
        self.PHOTO_MAX_PIXELS = int(os.environ.get("MUSTER_PHOTO_MAX_PIXELS", "600"))
        self.MAX_CONTENT_LENGTH = int(os.environ.get("MUSTER_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)))
        # The default in-memory store counts per process (each gunicorn worker its own count);
        # with MUSTER_REDIS_URL every process and machine shares one count (README, "Rate limits").
        self.REDIS_URL = _redis_url()
        self.RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or self.REDIS_URL or "memory://"
        # Redis unreachable: count per process for a while rather than refuse every sign-in.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_HEADERS_ENABLED = True
        self.WTF_CSRF_TIME_LIMIT = None  # tied to the session instead of a clock
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        # The site's public address: printed and mailed links (card QR codes) are built
        # from it, never from a request's Host header, and it names the trusted host.
        self.PUBLIC_URL = os.environ.get("MUSTER_PUBLIC_URL", "").strip().rstrip("/") or DEFAULT_PUBLIC_URL
        # Requests for any other Host answer 400 (Flask's TRUSTED_HOSTS).
        self.TRUSTED_HOSTS = _trusted_hosts(self.PUBLIC_URL)
        # Reverse proxies in front of gunicorn whose X-Forwarded-For is trusted (0: none).
        self.PROXY_HOPS = int(os.environ.get("MUSTER_PROXY_HOPS", "0") or 0)
        self.SESSION_COOKIE_SECURE = _env_bool("MUSTER_SECURE_COOKIES", self.PUBLIC_URL.startswith("https://"))
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.PERMANENT_SESSION_LIFETIME = int(os.environ.get("MUSTER_SESSION_SECONDS", str(8 * 3600)))
        # How often the portal's notification bell asks for its count (seconds; htmx polling, issue 12).
        self.NOTIFICATIONS_POLL_SECONDS = max(1, int(os.environ.get("MUSTER_NOTIFICATIONS_POLL_SECONDS", "60") or 60))
        self.FLASK_ADMIN_SWATCH = "default"
        # The task queue (app/queue.py): unset = SQLite in instance/queue.db; redis://host:6379/0
        # or postgresql://... to share it between machines. Immediate = run tasks in the caller.
        self.QUEUE_URL = os.environ.get("MUSTER_QUEUE_URL", "").strip() or None
        self.QUEUE_IMMEDIATE = _env_bool("MUSTER_QUEUE_IMMEDIATE", False)
        # Background jobs (app/services/jobs.py) run in `flask worker`: its threads, whether it
        # runs the periodic tasks (the reaper), how long a claimed job's lease lasts without a
        # heartbeat, and how many times a job whose worker died is started before it fails.
        self.WORKER_THREADS = int(os.environ.get("MUSTER_WORKER_THREADS", "2"))
        self.WORKER_PERIODIC = _env_bool("MUSTER_WORKER_PERIODIC", True)
        self.JOB_STALE_SECONDS = int(os.environ.get("MUSTER_JOB_STALE_SECONDS", "120"))
        self.JOB_MAX_ATTEMPTS = int(os.environ.get("MUSTER_JOB_MAX_ATTEMPTS", "3"))
        # Shared file storage (app/services/storage/): photos, attachments, import uploads, job files.
        # Unset = instance/files/; file:///folder; or s3://bucket/prefix (boto3 reads AWS_ACCESS_KEY_ID,
        # AWS_SECRET_ACCESS_KEY itself) with MUSTER_S3_ENDPOINT_URL for an S3-compatible service.
        self.STORAGE_URL = os.environ.get("MUSTER_STORAGE_URL", "").strip() or None
        self.S3_ENDPOINT_URL = os.environ.get("MUSTER_S3_ENDPOINT_URL", "").strip() or None
        self.S3_REGION = os.environ.get("AWS_DEFAULT_REGION", "").strip() or None
        self.ADMIN_PAGE_SIZE = int(os.environ.get("MUSTER_ADMIN_PAGE_SIZE", "20"))
        # Member imports (see app/services/imports/): the largest file accepted, the
        # most columns read, rows written per transaction, how d/m/y dates are read
        # (DMY or MDY), and how long an abandoned upload is kept.
        self.IMPORT_MAX_BYTES = int(os.environ.get("MUSTER_IMPORT_MAX_BYTES", str(200 * 1024 * 1024)))
        self.IMPORT_MAX_COLUMNS = int(os.environ.get("MUSTER_IMPORT_MAX_COLUMNS", "200"))
        self.IMPORT_BATCH_SIZE = int(os.environ.get("MUSTER_IMPORT_BATCH_SIZE", "1000"))
        self.IMPORT_DATE_ORDER = os.environ.get("MUSTER_IMPORT_DATE_ORDER", "DMY").upper()
        self.IMPORT_UPLOAD_TTL_HOURS = int(os.environ.get("MUSTER_IMPORT_UPLOAD_TTL_HOURS", "48"))
        # Where uploads waited before they moved to the file storage: `flask storage migrate` reads it.
        self.IMPORT_UPLOAD_DIR = os.environ.get("MUSTER_IMPORT_UPLOAD_DIR")  # default: instance/imports
        # An Excel workbook is a zip archive: the most its parts may unpack to (app/services/zipguard.py).
        self.IMPORT_MAX_UNPACKED_BYTES = int(os.environ.get("MUSTER_IMPORT_MAX_UNPACKED_BYTES", str(1024 ** 3)))
        # Uploads one person may keep waiting to be imported (count, and bytes in all).
        self.IMPORT_PENDING_MAX = int(os.environ.get("MUSTER_IMPORT_PENDING_MAX", "5"))
        self.IMPORT_PENDING_MAX_BYTES = int(os.environ.get("MUSTER_IMPORT_PENDING_MAX_BYTES", str(1024 ** 3)))
        # Events: the organisation's time zone (event times are entered and shown in it, and
        # "once per day" check-ins count its days), how early the doors open for check-in,
        # and the largest attachment (agenda, flyer).
        self.TIMEZONE = os.environ.get("MUSTER_TIMEZONE", "UTC")
        self.EVENT_CHECKIN_OPENS_MINUTES = int(os.environ.get("MUSTER_EVENT_CHECKIN_OPENS_MINUTES", "120"))
        self.EVENT_ATTACHMENT_MAX_BYTES = int(
            os.environ.get("MUSTER_EVENT_ATTACHMENT_MAX_BYTES", str(10 * 1024 * 1024))
        )
        # A Word attachment is a zip archive: the most its parts may unpack to (app/services/zipguard.py).
        self.EVENT_ATTACHMENT_MAX_UNPACKED_BYTES = int(
            os.environ.get("MUSTER_EVENT_ATTACHMENT_MAX_UNPACKED_BYTES", str(100 * 1024 * 1024))
        )
        # Membership cards (issue #4): card numbers, validity periods, signing keys and the
        # card design (the QR codes link to PUBLIC_URL's /verify page).
        self.CARD_NUMBER_PREFIX = os.environ.get("MUSTER_CARD_NUMBER_PREFIX", "M")
        self.CARD_MONTHS = os.environ.get("MUSTER_CARD_MONTHS", "standard=12,premium=12")
        self.CARD_KEYS_DIR = os.environ.get("MUSTER_CARD_KEYS_DIR") or None  # default: instance/card_keys
        self.CARD_SIGNING_KEY = os.environ.get("MUSTER_CARD_SIGNING_KEY") or None
        self.CARD_VERIFY_KEYS = os.environ.get("MUSTER_CARD_VERIFY_KEYS") or None
        self.CARD_VERIFY_RATE_LIMIT = os.environ.get("MUSTER_CARD_VERIFY_RATE_LIMIT", "60 per minute")
        self.CARD_LOGO = os.environ.get("MUSTER_CARD_LOGO") or None  # a PNG or JPEG file
        self.CARD_COLOR = os.environ.get("MUSTER_CARD_COLOR", "#1d4f91")
        # Card lifecycle (issue #12): days after its expiry date an active card is "in grace" (it still
        # verifies, admits at the door and can be renewed) before it expires and its member lapses.
        self.CARD_GRACE_DAYS = int(os.environ.get("MUSTER_GRACE_DAYS", "30"))
        # Dues (issue 14, app/services/dues/renewal.py): "Renew" is offered from this many days before the
        # membership's expiry, through the grace period and after it.
        self.RENEWAL_WINDOW_DAYS = int(os.environ.get("MUSTER_RENEWAL_WINDOW_DAYS", "60"))
        # Registrations of an event still "registered" this long after its end become no-shows.
        self.NO_SHOW_AFTER_HOURS = float(os.environ.get("MUSTER_NO_SHOW_AFTER_HOURS", "2"))
        # Referrals (issue 13, app/services/referrals/): points a referrer earns when the person they
        # brought becomes active, and days a recorded referral may stay pending before the sweep expires it.
        self.REFERRAL_POINTS = int(os.environ.get("MUSTER_REFERRAL_POINTS", "10"))
        self.REFERRAL_EXPIRY_DAYS = int(os.environ.get("MUSTER_REFERRAL_EXPIRY_DAYS", "60"))
        # How many prospects one member may record (and invite by mail) in a day: a cap on invitation spam.
        self.REFERRAL_PROSPECTS_PER_DAY = int(os.environ.get("MUSTER_REFERRAL_PROSPECTS_PER_DAY", "20"))
        # Checks of a referral code by anyone (GET /api/v1/referrals/code/<code>), per address: plenty for
        # people typing one, far too slow to walk the codes.
        self.REFERRAL_CODE_RATE_LIMIT = os.environ.get("MUSTER_REFERRAL_CODE_RATE_LIMIT", "30 per minute")
        # Outgoing mail (issue #10, app/services/mail/): Flask-Mailman's settings. With no
        # MAIL_SERVER every message is written as an .eml file under MAIL_FILE_PATH instead.
        self.MAIL_SERVER = os.environ.get("MAIL_SERVER", "").strip() or "localhost"
        self.MAIL_PORT = int(os.environ.get("MAIL_PORT", "25") or 25)
        self.MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
        self.MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
        self.MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)
        self.MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER") or _default_sender(self.ORG_NAME,
                                                                                         self.PUBLIC_URL)
        self.MAIL_BACKEND = _mail_backend()
        self.MAIL_FILE_PATH = os.environ.get("MUSTER_MAIL_DIR") or str(INSTANCE_DIR / "mail")
        self.MAIL_TIMEOUT = float(os.environ.get("MUSTER_MAIL_TIMEOUT", "30"))  # a silent server never hangs a worker
        # Bulk mail's rate across all workers ("30/minute"; empty: no limit), counted in Redis when
        # REDIS_URL is set, else in MAIL_RATE_DB, a small SQLite file every process of this machine shares.
        self.MAIL_RATE = os.environ.get("MUSTER_MAIL_RATE", "").strip()
        self.MAIL_RATE_DB = os.environ.get("MUSTER_MAIL_RATE_DB") or str(INSTANCE_DIR / "mail_rate.db")
        # Delivery retries after a passing failure (connection refused, 4xx): the first after
        # MAIL_RETRY_SECONDS, doubling up to MAIL_RETRY_MAX_SECONDS, failed after MAIL_MAX_ATTEMPTS.
        self.MAIL_RETRY_SECONDS = float(os.environ.get("MUSTER_MAIL_RETRY_SECONDS", "60"))
        self.MAIL_RETRY_MAX_SECONDS = float(os.environ.get("MUSTER_MAIL_RETRY_MAX_SECONDS", "3600"))
        self.MAIL_MAX_ATTEMPTS = int(os.environ.get("MUSTER_MAIL_MAX_ATTEMPTS", "8"))
        # How long a worker's claim on a message lasts (longer than MAIL_TIMEOUT's worst case).
        self.MAIL_CLAIM_SECONDS = int(os.environ.get("MUSTER_MAIL_CLAIM_SECONDS", "300"))
        # The scheduler process (`flask scheduler run`, app/scheduler/): how long the leader's lease lasts
        # without renewal (a standby takes over at most this long after the leader died; the leader renews,
        # and re-checks PostgreSQL's advisory lock, three times per lease), and how late a missed firing may
        # still run (a catch-up at start after the server was down, or a firing the process was too busy for).
        self.SCHEDULER_LEASE_SECONDS = float(os.environ.get("MUSTER_SCHEDULER_LEASE_SECONDS", "30"))
        self.SCHEDULER_MISFIRE_HOURS = float(os.environ.get("MUSTER_SCHEDULER_MISFIRE_HOURS", "72"))
        # Reminders (issue 12; admins may override these in the console, app/services/reminders/settings.py):
        # renewal reminders at these offsets in days from card expiry, event reminders this many hours
        # before the start; a reminder missed (the scheduler down) still goes out up to CATCHUP_DAYS late.
        self.RENEWAL_REMINDERS = os.environ.get("MUSTER_RENEWAL_REMINDERS", "-30,-7,0,+14")
        self.EVENT_REMINDER_HOURS = float(os.environ.get("MUSTER_EVENT_REMINDER_HOURS", "24"))
        self.REMINDER_CATCHUP_DAYS = int(os.environ.get("MUSTER_REMINDER_CATCHUP_DAYS", "7"))
        # Online dues through Stripe (issue 14, app/services/dues/stripe_gateway.py): without a secret key
        # online payment is hidden and manual payments still work; the webhook secret verifies
        # Stripe-Signature headers; STRIPE_API_BASE points every API call elsewhere (the tests' local stand-in).
        self.STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "").strip() or None
        self.STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "").strip() or None
        self.STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/") or None


class TestConfig(Config):
    """Settings for the test suite: a throwaway database, CSRF on as in production."""

    def __init__(self, database_url: str | None = None) -> None:
        super().__init__()
        self.TESTING = True
        self.SECRET_KEY = "test-secret-key"
        self.SQLALCHEMY_DATABASE_URI = database_url or os.environ.get(
            "TEST_DATABASE_URL", "sqlite://"
        )
        self.RATELIMIT_STORAGE_URI = "memory://"
        # Mail stays in memory (app.extensions["mailman"].outbox) unless a test points it at aiosmtpd.
        self.MAIL_BACKEND = "locmem"
        self.MAIL_DEFAULT_SENDER = '"Muster Test" <no-reply@muster.test>'
        self.MAIL_RATE = ""
        # Never real Stripe from the tests, whatever the developer's shell exports: tests that pay point
        # these at the local stand-in (tests/stripe_standin.py).
        self.STRIPE_SECRET_KEY = self.STRIPE_WEBHOOK_SECRET = self.STRIPE_API_BASE = None
        self.PASSWORD_METHOD = "pbkdf2:sha256:1000"  # fast hashes keep the suite quick
        # Each test shares one connection; tasks (jobs) run in the caller's thread through the
        # same task function, unless a test runs a real consumer (app.queue.using/running_consumer).
        self.QUEUE_IMMEDIATE = True
        # The tests written before grace existed say "an active card past its date is expired": no grace
        # here; tests of the grace period (tests/services/test_lifecycle.py) set CARD_GRACE_DAYS themselves.
        self.CARD_GRACE_DAYS = 0
        # Card signing keys of the test run (removed at exit), never the instance's real ones.
        self.CARD_KEYS_DIR = os.environ.get("MUSTER_TEST_CARD_KEYS_DIR")
        if not self.CARD_KEYS_DIR:
            self.CARD_KEYS_DIR = tempfile.mkdtemp(prefix="muster-keys-")
            atexit.register(shutil.rmtree, self.CARD_KEYS_DIR, True)
