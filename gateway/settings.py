"""Runtime settings (environment ``GATEWAY_*``), with embedded defaults that run on one machine.

Defaults point every registry at the local sandbox with development TLS material under
``var/``; production overrides endpoints per recipient with ``GATEWAY_ENDPOINTS_FILE``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]


def _in_checkout() -> bool:
    """Whether this is the source checkout (``pip install -e``, ``python -m gateway``) and not a wheel."""
    return (ROOT / "pyproject.toml").is_file() and (ROOT / "config" / "jurisdictions.yaml").is_file()


def default_config_dir() -> Path:
    """The policy files: the checkout's ``config/``, else the copy shipped in the wheel (``gateway/_config``)."""
    if _in_checkout():
        return ROOT / "config"
    return Path(str(resources.files("gateway") / "_config"))


def default_var_dir() -> Path:
    """State (SQLite, keys, development tokens and PKI): the checkout's ``var/``, else ``./var`` of the
    working directory; production sets ``GATEWAY_VAR_DIR`` (the image: ``/data``)."""
    return ROOT / "var" if _in_checkout() else Path.cwd() / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    config_dir: Path = Field(default_factory=default_config_dir)
    var_dir: Path = Field(default_factory=default_var_dir)
    db_path: Path | None = None
    db_synchronous: str = "FULL"
    tokens_file: Path | None = None
    endpoints_file: Path | None = None
    secret_file: Path | None = None
    database_url: str | None = None  # postgresql://… to use PostgreSQL instead of the embedded SQLite
    kek_file: Path | None = None  # key-encryption key ring (JSON, mode 0600)
    kek: str | None = None  # …or the same JSON in GATEWAY_KEK
    blind_index_key_file: Path | None = None
    signing_key_file: Path | None = None  # Ed25519 checkpoint key (PEM)
    checkpoint_interval_s: float = Field(default=60.0, ge=0)
    retention_interval_s: float = Field(default=86_400.0, ge=0)  # the purge job; 0 turns it off
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    #: ``/metrics`` answers staff tokens (privacy, auditor) and, if set, the token with this SHA-256
    #: (``gateway hash-token``), so a Prometheus scraper needs no token that can read the log.
    metrics_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    # default registry endpoint: the sandbox
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 7700
    registrar_client_id: str = "registrar1"
    registrar_password: str = "sandbox-pass-1"  # noqa: S105 - the local sandbox's, not a secret
    pki_dir: Path | None = None

    worker_enabled: bool = True
    worker_poll_s: float = Field(default=0.2, gt=0)
    worker_batch: int = Field(default=8, ge=1, le=256)
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=300.0, ge=0)
    epp_timeout_s: float = Field(default=10.0, gt=0)
    epp_max_sessions: int = Field(default=4, ge=1, le=64)  # per registry
    epp_keepalive_s: float = Field(default=300.0, gt=0)
    epp_rate_limit_per_s: float | None = Field(default=None, gt=0)
    epp_attempts: int = Field(default=3, ge=1, le=10)  # in-process retries before the outbox backs off
    #: A claimed outbox row older than this is taken to belong to a dead worker and is retried.  The
    #: gateway raises it to at least what one delivery can take (EPP timeout x attempts, twice over).
    worker_lease_s: float = Field(default=120.0, gt=0)
    #: Webhooks for the ordering system (``gateway.delivery.webhooks``): http callback URLs on a loopback
    #: address are refused unless this is set (development and tests only).
    webhooks_allow_loopback_http: bool = False
    webhooks_send: bool = True  # False: subscriptions and events are kept, but this process sends none
    webhook_poll_s: float = Field(default=1.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_max_age_s: float = Field(default=3 * 86_400.0, gt=0)  # an event older than this is given up
    webhook_backoff_base_s: float = Field(default=5.0, ge=0)
    webhook_backoff_max_s: float = Field(default=3_600.0, ge=0)

    def effective_lease_s(self) -> float:
        return max(self.worker_lease_s, 2 * self.epp_timeout_s * (self.epp_attempts + 1))

    def resolved_db(self) -> Path:
        return self.db_path or self.var_dir / "gateway.sqlite3"

    def resolved_pki(self) -> Path:
        return self.pki_dir or self.var_dir / "pki"

    def resolved_tokens(self) -> Path:
        return self.tokens_file or self.var_dir / "tokens.yaml"

    def resolved_kek(self) -> Path:
        return self.kek_file or self.var_dir / "keys" / "kek.json"

    def resolved_blind_index_key(self) -> Path:
        return self.blind_index_key_file or self.var_dir / "keys" / "blind-index.key"

    def resolved_signing_key(self) -> Path:
        return self.signing_key_file or self.var_dir / "keys" / "checkpoint-signing.pem"

    def resolved_secret(self) -> Path:
        return self.secret_file or self.var_dir / "secret.key"
