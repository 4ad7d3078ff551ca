"""Runtime settings (environment ``GATEWAY_*``), with embedded defaults that run on one machine.

Defaults point every registry at the local sandbox with development TLS material under
``var/``; production overrides endpoints per recipient with ``GATEWAY_ENDPOINTS_FILE``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

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
    #: A running gateway re-reads the KEK ring file before wrapping any new data key; besides, it checks
    #: the file this often (a stat) and on SIGHUP, so reads follow a rotation too.  0: no periodic check.
    key_ring_watch_s: float = Field(default=5.0, ge=0)
    #: ``gateway keys retire``/``rotate --retire-old`` wait this long after draining an old KEK before the
    #: final count: the longest a registration that read the ring before the rotation may take to commit.
    key_retire_grace_s: float = Field(default=30.0, ge=0)
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

    #: Where outbox rows are delivered from (the scheduler, the registry poll workers, escrow deposits and
    #: webhook notifications):
    #: ``inprocess``: this process delivers beside its API (one process; what tests build with ``build``);
    #: ``external``: ``gateway worker`` processes deliver (``gateway run`` starts one and supervises it) and
    #: this process only wakes those of its host through the named pipe ``<var_dir>/delivery.wake``;
    #: ``off``: nothing is delivered from here and nobody is woken.  Unset: ``inprocess``, or ``off`` when
    #: ``GATEWAY_WORKER_ENABLED=false`` (the older switch).  ``gateway worker`` always delivers.
    delivery: Literal["inprocess", "external", "off"] | None = None
    worker_enabled: bool = True
    #: How often an idle delivery loop looks for due rows.  Rows queued on this host wake it at once
    #: (in-process event, or the wake pipe for ``gateway worker``); the poll serves other hosts (PostgreSQL)
    #: and rows that become due later (a retry's backoff).
    worker_poll_s: float = Field(default=0.2, gt=0)
    #: ``gateway worker`` serves ``/healthz`` and ``/metrics`` (the delivery counters) on this port of
    #: ``host``; unset: no HTTP at all in the worker process.
    worker_http_port: int | None = Field(default=None, ge=0, le=65535)
    worker_batch: int = Field(default=8, ge=1, le=256)
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    #: Transient failures (connection refused or reset, timeouts, 2400, 2500-range session errors, 2502
    #: rate limits) are retried with capped exponential backoff and jitter until this deadline, counted from
    #: a row's first failure (72 h: registries' maintenance windows last hours); the row is then parked
    #: (``needs_attention``) for staff to retry or cancel.  Permanent refusals park at once.
    delivery_deadline_s: float = Field(default=72 * 3600.0, gt=0)
    #: Optionally also park a row after this many attempts (None: the deadline alone decides).
    max_attempts: int | None = Field(default=None, ge=1, le=10_000)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=300.0, ge=0)
    epp_timeout_s: float = Field(default=10.0, gt=0)
    epp_max_sessions: int = Field(default=4, ge=1, le=64)  # per registry
    epp_keepalive_s: float = Field(default=300.0, gt=0)
    epp_rate_limit_per_s: float | None = Field(default=None, gt=0)
    epp_attempts: int = Field(default=3, ge=1, le=10)  # in-process retries before the outbox backs off
    #: Registry notices (``gateway.delivery.poll``): each EPP endpoint's poll queue is read this often (and
    #: at once again after a round that hit ``poll_max_per_round``); 0 turns the poll workers off.  Runs in
    #: the processes that run the delivery worker.
    poll_interval_s: float = Field(default=60.0, ge=0)
    poll_max_per_round: int = Field(default=100, ge=1, le=10_000)
    #: An upper bound on the claim lease (``worker_claim_lease_s``): a row whose worker stopped renewing its
    #: claim (killed) is taken over once this passes.  Renewal by the heartbeat means it need not cover a
    #: whole delivery.
    worker_lease_s: float = Field(default=120.0, gt=0)
    #: Delivery scheduling (``gateway.delivery.scheduler``): each recipient is a bulkhead with at most this
    #: many rows in flight, so a registry that hangs holds only its own slots ...
    #: More rows than the registry has EPP sessions: each command borrows a session on its own
    #: (``SessionPerCommand``), so while some rows commit a step or their finish, others use the sessions.
    worker_per_recipient: int = Field(default=16, ge=1, le=64)
    #: ... and all recipients together at most this many.
    worker_max_in_flight: int = Field(default=48, ge=1, le=256)
    #: A claim lasts this long and is renewed every third of it while its row is in flight; a dead
    #: process's rows are taken over once it passes (``worker_recover_s`` later at most).
    worker_claim_lease_s: float = Field(default=30.0, gt=0)
    worker_recover_s: float = Field(default=5.0, gt=0)
    #: On shutdown, rows in flight get this long to finish; the rest are cancelled and given back (pending).
    worker_shutdown_grace_s: float = Field(default=3.0, ge=0)
    #: After this many consecutive transport failures (refused, reset, timeout, TLS, no greeting) a
    #: recipient's circuit breaker opens: nothing of it is claimed for ``breaker_cooldown_s``, then one
    #: row probes the endpoint and closes the breaker again or re-opens it.
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
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

    def delivery_mode(self) -> Literal["inprocess", "external", "off"]:
        if self.delivery is not None:
            return self.delivery
        return "inprocess" if self.worker_enabled else "off"

    def wake_pipe(self) -> Path:
        """The named pipe an API process writes to wake ``gateway worker`` processes of this host."""
        return self.var_dir / "delivery.wake"

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
