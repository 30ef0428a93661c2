"""Settings read from the environment (prefix ``RELAYDESK_``).

``DATABASE_URL`` and ``REDIS_URL`` are also accepted without the prefix because that is
what hosting platforms set.  Only ``runtime.py`` turns these into adapters.
"""

from __future__ import annotations

import secrets
import ssl
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAYDESK_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RELAYDESK_DATABASE_URL", "DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RELAYDESK_REDIS_URL", "REDIS_URL")
    )
    secret_key: str | None = None
    allow_signup: bool = True

    host: str = "127.0.0.1"
    port: int = 8000
    # How long an idle HTTP keep-alive connection stays open. Longer than a load
    # balancer's own idle timeout (60 s on the common ones), so that the proxy, not
    # Relaydesk, closes idle connections: otherwise one closed here just as the proxy
    # reuses it fails that request (uvicorn's default is 5 s).
    http_keep_alive_seconds: int = Field(default=75, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = True

    access_token_ttl_seconds: int = Field(default=900, ge=60)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # After this many failed sign-ins in a row each next try must wait 1 s, 2 s, 4 s...
    login_slowdown_after: int = 3
    # ...and after this many the email is locked out for login_lockout_seconds.
    login_max_failures: int = 8
    login_lockout_seconds: int = 900
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)  # Argon2's least (one lane)

    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 10 * 1024 * 1024
    upload_dir: Path | None = None
    sqlite_busy_timeout_ms: int = 10_000

    # Background work: how often the periodic scans run and the outbox is polled.
    sla_scan_seconds: float = Field(default=60, gt=0)
    auto_close_scan_seconds: float = Field(default=60, gt=0)
    queue_sweep_seconds: float = Field(default=60, gt=0)
    outbox_poll_seconds: float = Field(default=2, gt=0)
    # How long a stopping server (embedded mode) or worker (scaled mode) lets its running jobs finish.
    shutdown_grace_seconds: float = Field(default=10, ge=0)
    # Scaled mode: while this many jobs wait or run, dispatchers leave new events in the
    # outbox, so that when a worker frees up they leave together as one bigger batch.
    jobs_ahead: int = Field(default=8, ge=1)
    # Scaled mode: an event handed to the job queue and not done with after this long is
    # handed out again (the queue lost it: Redis restarted empty, or the database was away
    # for longer than the consumer's retries).
    event_lease_seconds: float = Field(default=60, gt=0)
    # The Redis stream jobs travel on (scaled mode); deployments sharing a Redis use different names.
    job_queue: str = "relaydesk:jobs"
    # The Redis pub/sub channel live events cross server processes on (scaled mode).
    realtime_channel: str = "relaydesk:live"

    # The public chat, which anyone can use without signing in: conversations started per
    # address (IP) in 10 minutes and per email in an hour, and lines said per minute in one
    # conversation, each per workspace. Without them it would mail whatever anybody typed
    # to any address, from the support address.
    chat_starts_per_ip: int = Field(default=20, ge=1)
    chat_starts_per_email: int = Field(default=5, ge=1)
    chat_lines_per_minute: int = Field(default=30, ge=1)

    # Live sockets: frames buffered per socket before a slow client is dropped (it
    # reconnects and resumes), heartbeat, silence before a socket is closed, how long an
    # agent may be idle before showing as away, how many missed events a resume replays.
    ws_buffer_frames: int = Field(default=1000, ge=1)
    ws_buffer_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)
    # Sockets one person may hold open at once (tabs, devices): each costs the server memory.
    ws_sockets_per_person: int = Field(default=30, ge=1)
    ws_heartbeat_seconds: float = Field(default=25, gt=0)
    ws_idle_timeout_seconds: float = Field(default=75, gt=0)
    ws_auth_timeout_seconds: float = 10
    ws_replay_limit: int = Field(default=1000, ge=1)
    # permessage-deflate for live sockets. Off: events are small JSON that deflate barely
    # shrinks, and it nearly doubles a socket's memory (~45 KiB of zlib state each) and
    # costs CPU per frame per socket. Worth turning on only for clients on slow links.
    ws_compression: bool = False
    agent_away_after_seconds: float = Field(default=600, gt=0)

    # The address Relaydesk itself is reached at (Twilio signs it; the API and widget live there).
    public_url: str = "http://127.0.0.1:8000"
    # Whether workspace admins may point IMAP mailboxes, the SMS provider and webhooks
    # (those asking for it with ``allow_private``) at loopback or private addresses (one
    # company with an internal mail server). Off, anyone who makes a workspace could
    # otherwise have the server probe the network around it.
    allow_private_targets: bool = False
    # The web app agents and customers open tickets in (Relaydesk serves the API and the chat
    # widget, not those pages): links in emails point into it. Unset, emails carry none
    # rather than links that lead nowhere.
    app_url: str | None = None
    # Outbound mail goes to this SMTP relay; without one it is written to <data dir>/mail-outbox.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    # Relaydesk's own mail domain: every workspace receives mail at <slug>@mail_domain, and
    # the Message-IDs it sends end in it.
    mail_domain: str = "relaydesk.localhost"
    # The built-in SMTP listener for inbound mail (in `serve` in the embedded mode, in
    # `worker --smtp` in the scaled mode); port 0 turns it off.
    smtp_listen_host: str = "127.0.0.1"
    smtp_listen_port: int = 2525
    # A certificate chain and its private key (PEM files), both or neither: with them the
    # listener offers STARTTLS, so mail from servers that use it crosses the internet
    # encrypted. Plain mail is still taken (many senders never use TLS) unless TLS is required.
    smtp_listen_tls_cert: Path | None = None
    smtp_listen_tls_key: Path | None = None
    smtp_listen_require_tls: bool = False
    imap_poll_seconds: float = Field(default=60, gt=0)
    # Notification deliveries: how often due ones are looked for, and how long replies
    # and status changes to one person wait to be sent together as one email.
    delivery_scan_seconds: float = Field(default=5, gt=0)
    notification_batch_seconds: float = Field(default=60, ge=0)
    delivery_max_attempts: int = Field(default=8, ge=1)
    # Team leads get their team's daily summary at this hour (UTC).
    daily_summary_hour_utc: int = Field(default=8, ge=0, le=23)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL (redis://host:6379/0, rediss://… or unix://…)")
        return url

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        # Refused here, named, rather than as a driver's traceback at the first connection.
        if url is not None and not url.startswith(("sqlite://", "sqlite+aiosqlite://", "postgres://",
                                                   "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("must be a PostgreSQL URL (postgresql://user:password@host/db) "
                             "or a SQLite one (sqlite:///path/to/file.db)")
        return url

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> "Settings":
        if self.env == "production" and not self.secret_key:
            raise ValueError("RELAYDESK_SECRET_KEY must be set when RELAYDESK_ENV=production")
        return self

    @model_validator(mode="after")
    def _listener_certificate_usable(self) -> "Settings":
        # Checked at start-up, named, rather than found out by the first sender's failed handshake.
        cert, key = self.smtp_listen_tls_cert, self.smtp_listen_tls_key
        if (cert is None) != (key is None):
            missing = "RELAYDESK_SMTP_LISTEN_TLS_KEY" if key is None else "RELAYDESK_SMTP_LISTEN_TLS_CERT"
            raise ValueError(f"{missing} must be set too: the SMTP listener needs both a certificate and its key")
        if self.smtp_listen_require_tls and cert is None:
            raise ValueError("RELAYDESK_SMTP_LISTEN_REQUIRE_TLS needs RELAYDESK_SMTP_LISTEN_TLS_CERT and _KEY")
        self.smtp_listen_tls_context()
        return self

    def smtp_listen_tls_context(self) -> ssl.SSLContext | None:
        """The SMTP listener's TLS context, from its certificate files; None without them."""
        if self.smtp_listen_tls_cert is None or self.smtp_listen_tls_key is None:
            return None
        for setting, path in (("RELAYDESK_SMTP_LISTEN_TLS_CERT", self.smtp_listen_tls_cert),
                              ("RELAYDESK_SMTP_LISTEN_TLS_KEY", self.smtp_listen_tls_key)):
            try:
                path.read_bytes()
            except OSError as exc:
                raise ValueError(f"{setting}: cannot read {path} ({exc.strerror or exc})") from None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.smtp_listen_tls_cert, self.smtp_listen_tls_key)
        except ssl.SSLError as exc:
            raise ValueError("RELAYDESK_SMTP_LISTEN_TLS_CERT / _KEY: not a certificate chain and its "
                             f"private key in PEM ({exc.reason or exc})") from None
        return context

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite:///{(self.data_dir / 'relaydesk.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite+aiosqlite://"):  # accepted from older configurations; the driver is ours now
            url = "sqlite://" + url.removeprefix("sqlite+aiosqlite://")
        return url

    @property
    def resolved_upload_dir(self) -> Path:
        return self.upload_dir or self.data_dir / "attachments"

    def make_data_dir(self) -> None:
        """The data dir holds the database, attachments, mail and the signing key: made
        for its owner only. One that exists is left as the operator set it."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def resolved_secret_key(self) -> str:
        """The signing key; outside production one is made once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path in _KEPT_KEYS:  # asked for per outgoing email: read the file once
            return _KEPT_KEYS[path]
        if path.exists():
            key = path.read_text().strip()
        else:
            self.make_data_dir()
            key = secrets.token_urlsafe(48)
            path.write_text(key)
            path.chmod(0o600)
        _KEPT_KEYS[path] = key
        return key


_KEPT_KEYS: dict[Path, str] = {}
