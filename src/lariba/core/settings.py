"""Settings read from the environment (prefix ``LARIBA_``), documented in docs/configuration.md."""

from __future__ import annotations

import ipaddress
import os
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderName(StrEnum):
    local = "local"
    aws = "aws"


class Environment(StrEnum):
    development = "development"
    production = "production"


def _default_data_dir() -> Path:
    # A service run as root keeps its state where system services do; anyone else in
    # their own home, so nobody needs write access outside it.
    if os.name == "posix" and os.geteuid() == 0:
        return Path("/var/lib/lariba")
    return Path.home() / ".local" / "share" / "lariba"


# Values that must never protect a production deployment.
_INSECURE_SECRETS = frozenset({"", "changeme", "change-me", "secret", "lariba", "password"})


class Settings(BaseSettings):
    """Every setting Lariba Cloud reads. Environment variable = ``LARIBA_`` + upper-cased name."""

    model_config = SettingsConfigDict(env_prefix="LARIBA_", extra="ignore")

    env: Environment = Field(
        default=Environment.development,
        description="development or production. Production refuses default or missing secrets.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where Lariba keeps its state: the embedded PostgreSQL, the secret key file.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started under data_dir.",
    )
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=8000, description="Port the API listens on."
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "Base URL users reach Lariba at: links in e-mails, the web console's origin "
            "(checked on its forms, allowed by S3 buckets' CORS rule). Default http://host:port."
        ),
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Master key (32+ characters) that encrypts secrets at rest. Unset in development: "
            "generated once into data_dir/secret.key. Required in production."
        ),
    )
    admin_email: str = Field(
        default="admin@lariba.local", description="E-mail of the first platform admin."
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of the first platform admin. Unset: generated and printed once.",
    )
    allow_signup: bool = Field(default=True, description="Whether anyone may sign up.")
    log_level: str = Field(default="INFO", description="Log level of the JSON logs.")
    server_error_retention_days: Annotated[int, Field(ge=1)] = Field(
        default=30,
        description="How long unhandled API errors are kept for platform admins "
        "(GET /v1/admin/errors); older ones are purged hourly.",
    )
    jwt_issuer: str = Field(default="lariba", description="`iss` of issued tokens.")
    jwt_audience: str = Field(default="lariba-api", description="`aud` of access tokens.")
    access_token_ttl_seconds: Annotated[int, Field(ge=30, le=86400)] = Field(
        default=900, description="Lifetime of an access token."
    )
    refresh_token_ttl_seconds: Annotated[int, Field(ge=300)] = Field(
        default=30 * 86400, description="Lifetime of a login session (refresh token family)."
    )
    session_check_cache_seconds: Annotated[float, Field(ge=0, le=30)] = Field(
        default=1.0,
        description=(
            "How long an API process trusts that a session it just checked is still live. "
            "A logout on another replica takes effect there within this time; 0 checks "
            "the database on every call."
        ),
    )
    password_min_length: Annotated[int, Field(ge=8)] = Field(
        default=10, description="Minimum password length."
    )
    argon2_memory_kib: Annotated[int, Field(ge=19456)] = Field(
        default=19456, description="argon2id memory cost in KiB (OWASP minimum 19 MiB)."
    )
    argon2_time_cost: Annotated[int, Field(ge=2)] = Field(
        default=2, description="argon2id iterations."
    )
    argon2_parallelism: Annotated[int, Field(ge=1)] = Field(
        default=1, description="argon2id lanes."
    )
    login_max_failures: Annotated[int, Field(ge=1)] = Field(
        default=5, description="Failed logins per account before it is throttled."
    )
    login_ip_max_failures: Annotated[int, Field(ge=1)] = Field(
        default=50, description="Failed logins per client address before it is throttled."
    )
    login_failure_window_seconds: Annotated[int, Field(ge=1)] = Field(
        default=900, description="Window over which failed logins are counted."
    )
    login_lockout_seconds: Annotated[int, Field(ge=1)] = Field(
        default=60, description="First throttle period; doubles with each further failure."
    )
    login_lockout_max_seconds: Annotated[int, Field(ge=1)] = Field(
        default=900, description="Longest throttle period."
    )
    invitation_ttl_seconds: Annotated[int, Field(ge=60)] = Field(
        default=7 * 86400, description="How long an invitation can be accepted."
    )
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=1024 * 1024, description="Largest request body the JSON API accepts."
    )
    db_pool_size: Annotated[int, Field(ge=1)] = Field(
        default=10, description="Connections per API process."
    )
    db_connect_timeout_seconds: Annotated[int, Field(ge=1)] = Field(
        default=5, description="How long to wait for PostgreSQL before answering 503."
    )
    worker_in_process: bool = Field(
        default=True,
        description="lariba serve also runs a background worker (turn off when running "
        "separate `lariba worker` processes).",
    )
    worker_concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        default=8,
        description="Jobs one worker runs at once. A reconcile pass spends most of its "
        "time waiting for the provider, so one worker keeps several going.",
    )
    worker_metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="Port on which `lariba worker` serves its own Prometheus /metrics "
        "(reconcile passes, provider errors); 0: none.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Address `lariba worker` serves /metrics on (LARIBA_WORKER_METRICS_PORT).",
    )
    worker_heartbeat_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=10.0, description="How often a worker tells PostgreSQL it is alive."
    )
    job_stalled_after_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description=(
            "A job whose worker has sent no heartbeat for this long is run again by another "
            "worker (the first one died). At least three heartbeats."
        ),
    )
    reconcile_poll_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=2.0,
        description="How soon the reconciler looks again at a resource the provider is changing.",
    )
    reconcile_retry_base_seconds: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="First wait before retrying a throttled or failed provider call."
    )
    reconcile_retry_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="Longest wait between retries (the wait doubles up to it)."
    )
    reconcile_max_retries: Annotated[int, Field(ge=1)] = Field(
        default=12,
        description="Consecutive retriable failures after which a resource goes to `error`.",
    )
    quota_instances: Annotated[int, Field(ge=0)] = Field(
        default=20, description="Default limit of instances per project."
    )
    quota_vcpus: Annotated[int, Field(ge=0)] = Field(
        default=64, description="Default limit of instance vCPUs per project."
    )
    quota_buckets: Annotated[int, Field(ge=0)] = Field(
        default=20, description="Default limit of buckets per project."
    )
    quota_storage_bytes: Annotated[int, Field(ge=0)] = Field(
        default=100 * 1024**3, description="Default limit of bytes stored in a project's buckets."
    )
    quota_databases: Annotated[int, Field(ge=0)] = Field(
        default=5, description="Default limit of databases per project."
    )
    quota_database_storage_gb: Annotated[int, Field(ge=0)] = Field(
        default=200, description="Default limit of allocated database storage (GB) per project."
    )
    provider: ProviderName = Field(
        default=ProviderName.local,
        description="Where resources run: local (this machine) or aws.",
    )
    aws_region: str = Field(default="us-east-1", description="AWS region for the aws provider.")
    aws_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint override for every AWS service (moto server, LocalStack).",
    )
    aws_connect_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="Longest wait to connect to an AWS endpoint."
    )
    aws_read_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=20.0, description="Longest wait for an AWS answer, per attempt."
    )
    aws_max_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=3,
        description="Attempts per AWS call (the first included) before the reconciler's own "
        "backoff takes over.",
    )
    catalog_file: Path | None = Field(
        default=None,
        description="TOML file whose regions/sizes/images replace the provider's built-in ones.",
    )
    local_compute_enabled: bool | None = Field(
        default=None,
        description=(
            "Allow the local provider to run instances as processes on this machine. "
            "Unset: on in development, off in production."
        ),
    )
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for invitations and alert e-mails. Unset: no e-mail is sent.",
    )
    smtp_port: int = Field(default=587, description="SMTP port.")
    smtp_username: str | None = Field(default=None, description="SMTP user.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_from: str = Field(default="lariba@localhost", description="Sender of e-mails.")
    smtp_starttls: bool = Field(default=True, description="Use STARTTLS with the SMTP server.")
    smtp_tls: bool = Field(
        default=False,
        description="Connect to the SMTP server with TLS from the start (SMTPS, usually "
        "port 465) instead of STARTTLS.",
    )
    secret_key_previous: SecretStr | None = Field(
        default=None,
        description=(
            "The master key before the last rotation: secrets still encrypted with it stay "
            "readable until `lariba keys rotate-secrets` has re-encrypted them."
        ),
    )
    local_databases_url: str | None = Field(
        default=None,
        description=(
            "Admin (superuser) URL of the PostgreSQL server holding the local provider's "
            "databases; tenants get its host and port. Unset: Lariba runs its own under "
            "data_dir/databases-server."
        ),
    )
    local_databases_host: str = Field(
        default="127.0.0.1",
        description="Address Lariba's own databases server listens on, given to tenants.",
    )
    local_databases_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="Port of Lariba's own databases server; 0: a free port chosen at its "
        "first start, then kept.",
    )
    local_storage_min_part_bytes: Annotated[int, Field(ge=1)] = Field(
        default=5 * 1024 * 1024,
        description="Smallest multipart part (but the last) the local provider accepts; "
        "S3's 5 MiB. Lower it only for tests.",
    )
    multipart_upload_ttl_seconds: Annotated[int, Field(ge=60)] = Field(
        default=7 * 86400,
        description="A multipart upload neither completed nor aborted for this long is "
        "aborted (its parts deleted) by the per-minute resync.",
    )
    event_stream_poll_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=1.0,
        description="How often a live event stream (`/events` as server-sent events) looks "
        "for new events: one indexed query per open stream per tick.",
    )
    event_stream_heartbeat_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=15.0,
        description="A live event stream with nothing to send sends a `: keep-alive` comment "
        "this often, so proxies keep the connection open.",
    )
    event_stream_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=900.0,
        description="Longest a live event stream stays open; the client reconnects with "
        "`Last-Event-ID` (EventSource does so itself) and is authorised again.",
    )
    event_stream_max_open: Annotated[int, Field(ge=1)] = Field(
        default=100,
        description="Live event streams one API process serves at once; more are refused "
        "with 503 and `Retry-After`.",
    )
    webhook_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=10.0,
        description="Longest a webhook delivery attempt may take (connect, send, answer); "
        "slower is a failed attempt.",
    )
    webhook_max_attempts: Annotated[int, Field(ge=1, le=50)] = Field(
        default=10, description="Attempts of a webhook delivery before it is `failed`."
    )
    webhook_retry_base_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="Wait before the second attempt of a webhook delivery."
    )
    webhook_retry_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3600.0,
        description="Longest wait between webhook attempts (the wait doubles up to it).",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs webhooks may reach although they are private, "
        "loopback or link-local (e.g. `10.20.0.0/16`). Empty: only public addresses.",
    )
    webhook_allow_http: bool | None = Field(
        default=None,
        description="Allow `http://` webhook URLs. Unset: allowed in development, refused "
        "(https only) in production.",
    )
    alerts_interval_minutes: Annotated[int, Field(ge=1, le=59)] = Field(
        default=1, description="How often the worker evaluates every enabled alert rule."
    )
    metrics_interval_minutes: Annotated[int, Field(ge=1, le=59)] = Field(
        default=1,
        description="How often the worker samples every live resource's metrics (CPU, "
        "memory, network, bucket and database sizes).",
    )
    metrics_batch_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=100,
        description="Resources one metrics collection reads and measures at a time.",
    )
    metrics_retention_days: Annotated[int, Field(ge=1)] = Field(
        default=7,
        description="How long raw metric samples are kept; older ones remain as hourly "
        "min/max/avg aggregates.",
    )
    metrics_hourly_retention_days: Annotated[int, Field(ge=1)] = Field(
        default=400, description="How long hourly metric aggregates are kept."
    )
    metrics_aws_lookback_minutes: Annotated[int, Field(ge=5, le=1440)] = Field(
        default=15,
        description="How far back each collection re-reads CloudWatch (aws provider): "
        "datapoints published late are picked up within this window.",
    )
    metrics_local_cpu_window_seconds: Annotated[float, Field(gt=0, le=10)] = Field(
        default=1.0,
        description="Local provider: CPU use is measured over this window (two readings "
        "of each instance's CPU time).",
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks_are_cidrs(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip())  # ValueError names the bad network
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.env is Environment.production:
            problems = []
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if key.lower() in _INSECURE_SECRETS or len(key) < 32:
                problems.append("LARIBA_SECRET_KEY must be set to 32+ random characters")
            if not self.database_url:
                problems.append("LARIBA_DATABASE_URL must be set (no embedded database)")
            password = self.admin_password.get_secret_value() if self.admin_password else None
            if password is not None and password.lower() in _INSECURE_SECRETS:
                problems.append("LARIBA_ADMIN_PASSWORD must not be a default value")
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _stall_detection_outlasts_heartbeats(self) -> Settings:
        if self.job_stalled_after_seconds < 3 * self.worker_heartbeat_seconds:
            raise ValueError(
                "LARIBA_JOB_STALLED_AFTER_SECONDS must be at least three "
                "LARIBA_WORKER_HEARTBEAT_SECONDS, or live jobs would be run twice"
            )
        return self

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def console_origin(self) -> str:
        """The web console's origin (scheme, host, port), as browsers send it."""
        public = urlsplit(self.base_url)
        return f"{public.scheme}://{public.netloc}"

    @cached_property
    def master_key(self) -> bytes:
        """The key that encrypts secrets at rest (see core.secrets)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def settings_reference() -> str:
    """The Markdown table of every setting, as published in docs/configuration.md."""
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name == "data_dir":
            default = "`/var/lib/lariba` as root, else `~/.local/share/lariba`"
        elif field.default is None:
            default = "unset"
        elif field.default == "":
            default = "empty"
        else:
            value = field.default
            if isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, bool):
                value = str(value).lower()
            default = f"`{value}`"
        rows.append(f"| `LARIBA_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows) + "\n"
