"""One `Settings` object: every knob is an environment variable `TUTORAPP_*`.

Profiles (`TUTORAPP_PROFILE`): `dev` (the default, embedded engines, readable logs),
`test` (used by the test suite), `staging` and `prod` (JSON logs, HSTS). Outside `dev`
and `test` the settings refuse values that are unsafe in front of real users.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from babel.numbers import list_currencies
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

Profile = Literal["dev", "test", "staging", "prod"]

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"
DEFAULT_DATABASE_URL = "sqlite:///./var/tutorapp.db"


def _split_commas(value: object) -> object:
    """Lists come from env vars as comma-separated strings (`a.com,b.com`)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class InsecureSettingsError(ValueError):
    """Raised when a staging/prod process is configured unsafely."""


def async_database_url(url: str) -> URL:
    """Map a plain database URL onto the async driver we use for its dialect."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


class BillingPlan(BaseModel):
    """One entry of the plan catalogue (`TUTORAPP_BILLING_PLANS`, a JSON list)."""

    key: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    kind: Literal["subscription", "package", "single"]
    name: str
    lessons: int = Field(ge=1, le=1000, description="credits per paid period or purchase")
    price_minor: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    variant_id: str = Field(min_length=1, description="the Lemon Squeezy variant sold")
    interval_months: int = Field(default=1, ge=1, le=12, description="subscription period")
    expires_after_months: int | None = Field(
        default=None, ge=1, description="package/single credits expire after this"
    )
    rollover: bool = Field(default=False, description="unused subscription credits carry over")


DEFAULT_BILLING_PLANS = [
    BillingPlan(key="monthly_4", kind="subscription", name="4 lessons a month", lessons=4,
                price_minor=10_000, currency="EUR", variant_id="1001"),
    BillingPlan(key="monthly_8", kind="subscription", name="8 lessons a month", lessons=8,
                price_minor=19_000, currency="EUR", variant_id="1002", rollover=True),
    BillingPlan(key="pack_10", kind="package", name="10 lessons (6 months)", lessons=10,
                price_minor=24_000, currency="EUR", variant_id="1003", expires_after_months=6),
    BillingPlan(key="single", kind="single", name="Single lesson", lessons=1,
                price_minor=2_600, currency="EUR", variant_id="1004", expires_after_months=6),
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TUTORAPP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- process ---
    profile: Profile = "dev"
    debug: bool = False
    secret_key: str = DEFAULT_SECRET_KEY
    host: str = Field(default="127.0.0.1", description="the address `tutorapp serve` listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="the port `tutorapp serve` listens on")
    public_url: str = Field(
        default="",
        description="the site's address in links, redirects and webhooks; default: "
        "`http://<host>:<port>` as served (required in staging/prod)",
    )
    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON log lines; default: on in staging/prod, off in dev/test"
    )

    # --- data ---
    database_url: str = DEFAULT_DATABASE_URL
    database_replica_urls: CommaList = Field(default_factory=list)
    database_pool_size: int = Field(
        default=10, ge=1, description="connections each web process keeps per database engine"
    )
    database_max_overflow: int = Field(
        default=10, ge=0, description="extra connections a web process opens under load"
    )
    database_pool_timeout: float = Field(
        default=30.0, gt=0,
        description="seconds a request waits for a free connection before answering 503",
    )
    database_connect_timeout: float = Field(
        default=5.0, gt=0, description="seconds to open a PostgreSQL connection before 503"
    )
    database_lock_timeout_ms: int = Field(
        default=30000, ge=0,
        description="PostgreSQL `lock_timeout`: a row-lock wait longer than this answers 503 "
        "(0: wait forever)",
    )
    database_pgbouncer: bool = Field(
        default=False, description="connect through pgBouncer in transaction mode"
    )
    database_echo: bool = False
    sqlite_busy_timeout_ms: int = Field(
        default=30000, ge=0,
        description="SQLite: how long a writer waits for the write lock before answering 503",
    )
    sqlite_min_free_mb: int = Field(
        default=64, ge=0,
        description="SQLite: `/health/ready` answers 503 (`disk`) below this much free space",
    )
    redis_url: str | None = None
    redis_key_prefix: str = Field(default="tutorapp", description="namespace of our Redis keys")

    # --- realtime (/realtime/v1, Supabase Realtime's protocol; quotas per process/client) ---
    realtime_origins: CommaList = Field(
        default_factory=list,
        description="browser origins allowed on the WebSocket besides the public URL's; "
        "default: the CORS origins",
    )
    realtime_max_clients: int = Field(default=10_000, ge=1,
                                      description="concurrent WebSocket clients per process")
    realtime_max_channels_per_client: int = Field(default=100, ge=1)
    realtime_max_joins_per_second: int = Field(default=100, ge=1,
                                               description="channel joins per second per client")
    realtime_max_messages_per_second: int = Field(
        default=100, ge=1, description="messages per second per client")
    realtime_max_payload_bytes: int = Field(default=262_144, ge=1024,
                                            description="broadcast / presence payload size")
    realtime_idle_timeout_seconds: float = Field(
        default=60.0, gt=0, description="close a socket that sent nothing (no heartbeat)")
    realtime_replay_max_events: int = Field(default=1000, ge=0,
                                            description="events kept per topic for replay")
    realtime_replay_max_age_seconds: int = Field(default=86_400, ge=0,
                                                 description="how long events are kept")

    # --- HTTP hardening ---
    cors_origins: CommaList = Field(default_factory=list)
    allowed_hosts: CommaList = Field(default_factory=lambda: ["*"])
    trusted_proxies: CommaList = Field(default_factory=lambda: ["127.0.0.1"])
    force_https: bool | None = Field(
        default=None, description="redirect plain HTTP to HTTPS; default: on in prod"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # --- auth ---
    jwt_keys: CommaList = Field(
        default_factory=list,
        description="`kid:secret` pairs; the first signs, all verify (rotation). "
        "Default: one key derived from the secret key",
    )
    jwt_audience: str = "authenticated"
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    session_idle_timeout_minutes: int = Field(default=7 * 24 * 60, ge=1)
    session_max_age_hours: int = Field(default=30 * 24, ge=1)
    refresh_reuse_grace_seconds: int = Field(default=10, ge=0)
    email_verification_ttl_hours: int = Field(default=24, ge=1)
    password_reset_ttl_minutes: int = Field(default=60, ge=5)
    email_otp_ttl_minutes: int = Field(default=60, ge=5)
    email_otp_interval_seconds: int = Field(default=60, ge=0)
    login_attempts_per_account: int = Field(default=5, ge=1)
    login_attempts_per_ip: int = Field(default=50, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    jwt_private_key: str | None = Field(
        default=None,
        description="PEM private key (EC P-256 -> ES256, RSA -> RS256) that signs access "
        "tokens instead of the `jwt_keys`, published at /auth/v1/.well-known/jwks.json",
    )
    jwt_private_key_id: str = Field(default="tutorapp-signing-key-1", min_length=1)
    email_confirmation_required: bool = Field(
        default=False,
        description="password sign-in waits for the emailed confirmation (GoTrue's "
        "MAILER_AUTOCONFIRM=false); sign-up then answers without a session",
    )
    supabase_anon_key: str | None = Field(
        default=None,
        description="the `apikey` Supabase clients send (publishable key); when set, "
        "/auth/v1 requires it or the service key",
    )
    supabase_service_key: str | None = Field(default=None, description="the secret API key")
    auth_redirect_urls: CommaList = Field(
        default_factory=list,
        description="where /auth/v1 may redirect after a link (`redirect_to`), besides "
        "`public_url`; a trailing `*` matches a prefix",
    )
    password_hash_threads: int = Field(
        default=2, ge=1,
        description="argon2 hashes computed at once per process (in threads, off the event loop)",
    )

    # --- background jobs (DBOS Transact) ---
    jobs_database_url: str | None = Field(
        default=None,
        description="DBOS system database; default: `<app db>-jobs.db` next to a SQLite "
        "database, or the app's PostgreSQL database (schema `jobs_database_schema`)",
    )
    jobs_database_schema: str = "dbos"
    jobs_pool_size: int = Field(
        default=5, ge=1,
        description="connections a job worker keeps to the app database and to DBOS's "
        "system database (each)",
    )
    jobs_embedded_worker: bool | None = Field(
        default=None,
        description="run workflows inside `tutorapp serve`; default: on, off in the test profile",
    )
    jobs_executor_id: str | None = Field(
        default=None, description="this worker's id; default: `local` on SQLite, unique otherwise"
    )
    jobs_application_version: str | None = Field(
        default=None, max_length=100,
        description="the release recorded on each job run (set one per deploy, e.g. the git "
        "commit); default: `tutorapp-<package version>`",
    )
    jobs_recovery_lease_seconds: float = Field(default=30.0, gt=0)
    jobs_poll_interval_seconds: float = Field(default=0.2, ge=0.01)
    jobs_step_max_attempts: int = Field(default=5, ge=1)
    jobs_step_retry_interval_seconds: float = Field(default=2.0, ge=0)
    jobs_monthly_step_quota: int = Field(default=10_000, ge=0)

    # --- email ---
    email_provider: Literal["outbox", "smtp", "resend"] = "outbox"
    email_from: str = "TutorApp <no-reply@tutorapp.localhost>"
    email_daily_cap: int | None = Field(
        default=None, ge=0, description="emails sent per UTC day; mail past it waits a day"
    )
    email_daily_quota: int = Field(default=100, ge=0)
    email_monthly_quota: int = Field(default=3_000, ge=0)
    email_rate_limit_per_second: float = Field(default=2.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_implicit_tls: bool = False
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_ca_file: str | None = Field(
        default=None, description="CA bundle to trust for the SMTP server (a private CA)"
    )
    resend_api_key: str | None = None
    resend_api_url: str = "https://api.resend.com"
    resend_webhook_secret: str | None = None
    resend_timeout_seconds: float = Field(default=15.0, gt=0)

    # --- marketplace ---
    booking_hold_minutes: int = Field(
        default=15, ge=1, description="how long a booking that needs payment is held"
    )
    booking_payment_required: bool | None = Field(
        default=None,
        description="new bookings are held until paid; default: on, off in the test profile",
    )
    slot_step_minutes: int = Field(default=30, ge=5, le=60, description="slot start grid")
    slots_max_days: int = Field(default=62, ge=1, description="widest slots query, in days")
    default_buffer_minutes: int = Field(default=0, ge=0, le=240)
    default_min_notice_minutes: int = Field(default=12 * 60, ge=0)
    default_horizon_days: int = Field(default=90, ge=1)
    default_free_cancellation_hours: int = Field(default=24, ge=0)
    review_edit_days: int = Field(default=14, ge=0)
    series_max_lessons: int = Field(default=52, ge=1)
    search_page_size_max: int = Field(default=50, ge=1)
    search_free_time_scan_max: int = Field(
        default=500, ge=1,
        description="tutors checked for free time per search page (free-time filter/sort)",
    )

    # --- payments (billing) ---
    payments_provider: Literal["sandbox", "lemonsqueezy"] = "sandbox"
    lemonsqueezy_api_key: str | None = None
    lemonsqueezy_store_id: str | None = None
    lemonsqueezy_webhook_secret: str | None = None
    lemonsqueezy_api_url: str = "https://api.lemonsqueezy.com/v1"
    lemonsqueezy_timeout_seconds: float = Field(default=15.0, gt=0)
    lemonsqueezy_checkout_origin: str = Field(
        default="https://*.lemonsqueezy.com", pattern=r"^https://(\*\.)?[A-Za-z0-9.-]+(:\d+)?$",
        description="where Lemon Squeezy's hosted checkout lives (a custom checkout domain "
        "goes here); the CSP's form-action allows it",
    )
    billing_currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$",
        description="the one currency plans are sold in and wallets, earnings and payouts "
        "are kept in (a lesson costs one credit whatever the tutor)",
    )
    # How far back the reconciliation job pulls orders, invoices and subscriptions.
    lemonsqueezy_reconcile_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Attempts of a webhook inbox event before it is dead-lettered for an admin.
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    billing_plans: list[BillingPlan] = Field(
        default_factory=lambda: list(DEFAULT_BILLING_PLANS),
        description="the plan catalogue, a JSON list of plans",
    )
    billing_commission_bps: int = Field(
        default=1500, ge=0, le=10_000, description="platform commission in basis points (15%)"
    )
    billing_earning_hold_hours: int = Field(
        default=48, ge=0, description="an earning becomes payable this long after the lesson"
    )

    # --- web site and mobile clients ---
    featured_tutors: int = Field(default=6, ge=0, le=48,
                                 description="tutors shown on the landing page")
    mobile_min_version: str = Field(
        default="1.0.0", pattern=r"^\d+\.\d+\.\d+$",
        description="native apps below this version must update (GET /api/v1/mobile/config)")
    mobile_latest_version: str = Field(
        default="1.0.0", pattern=r"^\d+\.\d+\.\d+$",
        description="the newest native app version; older ones are offered the update")

    # --- file storage (docs/storage.md) ---
    data_dir: Path = Field(
        default=Path("var"), description="where the embedded defaults keep files (local storage)"
    )
    storage_url: str = Field(
        default="", pattern=r"^(|file://.+|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)$",
        description="`file:///path` or `s3://bucket/prefix`; default: `file://<data_dir>/storage`",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2, Supabase); default: AWS"
    )
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_virtual_hosted_style: bool = Field(
        default=False, description="`bucket.host` addressing instead of `host/bucket` paths"
    )
    storage_signed_url_max_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="longest `expiresIn` a signed URL may have"
    )
    storage_upload_url_seconds: int = Field(
        default=2 * 3600, ge=60, description="how long a signed upload URL is valid"
    )
    storage_renders_per_minute: int = Field(
        default=120, ge=1,
        description="new image transformations (cache misses) one client may ask for a minute",
    )
    storage_user_quota_bytes: int = Field(
        default=1024**3, ge=0, description="bytes one user may store over all buckets (0: none)"
    )
    storage_total_quota_bytes: int = Field(
        default=100 * 1024**3, ge=0,
        description="bytes stored over all users (the seed plan's 100 GB; 0: none)",
    )

    # --- demo ---
    seed_demo_on_start: bool = Field(
        default=False, description="`tutorapp serve` seeds demo data into an empty database"
    )

    _normalize_lists = field_validator(
        "database_replica_urls", "cors_origins", "realtime_origins", "allowed_hosts",
        "trusted_proxies", "auth_redirect_urls", mode="before"
    )(_split_commas)

    @field_validator("jwt_keys")
    @classmethod
    def _keys_have_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            kid, sep, secret = item.partition(":")
            if not sep or not kid.strip() or len(secret.strip()) < 32:
                raise ValueError("each key is `kid:secret` with a secret of 32+ characters")
        return value

    @field_validator("jwt_private_key")
    @classmethod
    def _loadable_private_key(cls, value: str | None) -> str | None:
        if value:
            from cryptography.hazmat.primitives.asymmetric import ec, rsa
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            try:
                key = load_pem_private_key(value.encode(), password=None)
            except ValueError as exc:
                raise ValueError("not a PEM private key without a passphrase") from exc
            if not (isinstance(key, rsa.RSAPrivateKey) or (
                    isinstance(key, ec.EllipticCurvePrivateKey)
                    and key.curve.name == "secp256r1")):
                raise ValueError("use an EC P-256 (ES256) or an RSA (RS256) key")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        async_database_url(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_an_origin(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
            raise ValueError("an http:// or https:// address, e.g. https://tutorapp.example")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _email_provider_is_configured(self) -> Settings:
        if self.email_provider == "smtp" and not self.smtp_host:
            raise ValueError("TUTORAPP_SMTP_HOST must be set when TUTORAPP_EMAIL_PROVIDER=smtp")
        if self.email_provider == "resend" and not self.resend_api_key:
            raise ValueError(
                "TUTORAPP_RESEND_API_KEY must be set when TUTORAPP_EMAIL_PROVIDER=resend"
            )
        return self

    @model_validator(mode="after")
    def _payments_provider_is_configured(self) -> Settings:
        if self.payments_provider == "lemonsqueezy":
            missing = [name for name, value in (
                ("TUTORAPP_LEMONSQUEEZY_API_KEY", self.lemonsqueezy_api_key),
                ("TUTORAPP_LEMONSQUEEZY_STORE_ID", self.lemonsqueezy_store_id),
                ("TUTORAPP_LEMONSQUEEZY_WEBHOOK_SECRET", self.lemonsqueezy_webhook_secret),
            ) if not value]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} must be set when TUTORAPP_PAYMENTS_PROVIDER=lemonsqueezy"
                )
        if self.billing_currency not in list_currencies():
            raise ValueError(f"TUTORAPP_BILLING_CURRENCY: {self.billing_currency} is not an "
                             "ISO 4217 currency")
        strays = sorted({p.key for p in self.billing_plans if p.currency != self.billing_currency})
        if strays:
            raise ValueError(f"TUTORAPP_BILLING_PLANS: {', '.join(strays)} not priced in "
                             f"TUTORAPP_BILLING_CURRENCY ({self.billing_currency})")
        keys = [plan.key for plan in self.billing_plans]
        variants = [plan.variant_id for plan in self.billing_plans]
        if len(set(keys)) != len(keys) or len(set(variants)) != len(variants):
            raise ValueError("TUTORAPP_BILLING_PLANS: plan keys and variant ids must be unique")
        return self

    @property
    def storage_location(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'storage').resolve()}"

    @model_validator(mode="after")
    def _refuse_insecure_outside_dev(self) -> Settings:
        if self.profile not in ("staging", "prod"):
            return self
        problems = []
        if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("TUTORAPP_SECRET_KEY must be set to a random value of 32+ characters")
        if self.debug:
            problems.append("TUTORAPP_DEBUG must be off")
        if "*" in self.cors_origins:
            problems.append("TUTORAPP_CORS_ORIGINS must list origins, not '*'")
        if not self.public_url:
            problems.append("TUTORAPP_PUBLIC_URL must be set to the site's public address")
        if self.payments_provider == "sandbox":
            problems.append("TUTORAPP_PAYMENTS_PROVIDER must not be sandbox (it grants free "
                            "credits): use lemonsqueezy")
        if self.email_provider == "outbox":
            problems.append("TUTORAPP_EMAIL_PROVIDER must not be outbox (nothing would be "
                            "delivered): use smtp or resend")
        if self.profile == "prod":
            if self.public_url and not self.public_url.startswith("https://"):
                problems.append("TUTORAPP_PUBLIC_URL must be an https:// address")
            if self.is_sqlite:
                problems.append("TUTORAPP_DATABASE_URL must point at PostgreSQL, not SQLite")
            if "*" in self.allowed_hosts:
                problems.append("TUTORAPP_ALLOWED_HOSTS must list the site's host names")
        if problems:
            raise InsecureSettingsError(
                f"refusing to start the {self.profile} profile with insecure settings: "
                + "; ".join(problems)
            )
        return self

    @model_validator(mode="after")
    def _public_url_follows_the_served_address(self) -> Settings:
        """Links, checkout redirects and the sandbox's webhooks go to where we serve,
        unless the operator names the public address (a proxy in front). Runs after
        the staging/prod check, which requires the address to be named."""
        if not self.public_url:
            host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(
                self.host, f"[{self.host}]" if ":" in self.host else self.host)
            self.public_url = f"http://{host}:{self.port}"
        return self

    @property
    def public_origin(self) -> str:
        """`scheme://host[:port]` of the public URL (the CSP names origins)."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def checkout_origins(self) -> list[str]:
        """Where "Buy" sends the browser: the provider's hosted checkout."""
        if self.payments_provider == "lemonsqueezy":
            return [self.lemonsqueezy_checkout_origin]
        return [self.public_origin]  # the sandbox's checkout page

    @property
    def credit_list_price_minor(self) -> int:
        """What one lesson credit costs bought on its own: the dearest price per credit
        in the catalogue (a credit an admin gave is worth this to the tutor)."""
        return max((p.price_minor // p.lessons for p in self.billing_plans), default=0)

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.profile in ("staging", "prod")

    @property
    def https_only(self) -> bool:
        return self.force_https if self.force_https is not None else self.profile == "prod"

    @property
    def secure_cookies(self) -> bool:
        """`__Host-` prefixed, Secure cookies everywhere but on a developer's machine."""
        return self.profile in ("staging", "prod")

    @property
    def session_cookie_name(self) -> str:
        return "__Host-tutorapp_session" if self.secure_cookies else "tutorapp_session"

    @property
    def jwt_issuer(self) -> str:
        return self.public_url.rstrip("/") + "/auth/v1"

    @property
    def signing_keys(self) -> list[tuple[str, str]]:
        """(kid, secret) pairs; the first one signs new tokens."""
        if not self.jwt_keys:
            import hashlib

            derived = hashlib.sha256(f"jwt:{self.secret_key}".encode()).hexdigest()
            return [("default", derived)]
        pairs = []
        for item in self.jwt_keys:
            kid, _, secret = item.partition(":")
            pairs.append((kid.strip(), secret.strip()))
        return pairs

    @property
    def bookings_need_payment(self) -> bool:
        if self.booking_payment_required is not None:
            return self.booking_payment_required
        return self.profile != "test"

    @property
    def show_tracebacks(self) -> bool:
        return self.profile == "dev"

    @property
    def jobs_system_database_url(self) -> str:
        """DBOS's system database (plain driver URL, as DBOS expects it)."""
        if self.jobs_database_url:
            return self.jobs_database_url
        url = make_url(self.database_url)
        if self.is_sqlite:
            path = self.sqlite_path or Path("var/tutorapp.db")
            return f"sqlite:///{path.with_name(path.stem + '-jobs.db')}"
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def jobs_run_in_serve(self) -> bool:
        if self.jobs_embedded_worker is not None:
            return self.jobs_embedded_worker
        return self.profile != "test"

    @property
    def payments_webhook_secret(self) -> str:
        """Lemon Squeezy's signing secret; the sandbox signs with one derived from the
        secret key, so its webhooks are verified exactly like real ones."""
        if self.payments_provider == "lemonsqueezy":
            if not self.lemonsqueezy_webhook_secret:  # the validator above requires it
                raise ValueError("TUTORAPP_LEMONSQUEEZY_WEBHOOK_SECRET is not set")
            return self.lemonsqueezy_webhook_secret
        import hashlib

        return hashlib.sha256(f"payments-sandbox:{self.secret_key}".encode()).hexdigest()[:40]

    @cached_property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        database = make_url(self.database_url).database
        return None if database in (None, "", ":memory:") else Path(database)


def get_settings() -> Settings:
    return Settings()
