"""Configuration from environment variables (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob the server reads; names are the environment variables, case-insensitive."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./leadgraph.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Processes serving the port (uvicorn's workers): one per core to use all of them. Each has
    # its own pools and caches; what must hold across them lives in the database.
    workers: int = Field(default=1, ge=1)
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = "info"

    # GraphiQL is served at GET /graphql from these self-hosted assets (see the Makefile).
    graphiql: bool = True
    graphiql_assets_dir: Path = Path(".venv/graphiql")

    # Accounts and access.
    session_idle_timeout_minutes: int = Field(default=7 * 24 * 60, ge=1)
    session_max_age_minutes: int = Field(default=30 * 24 * 60, ge=1)
    # Sign-up, sign-in and code attempts: per account from one client address (for passwords,
    # failed ones), and from one client address whatever the account.
    auth_rate_limit_per_minute: int = Field(default=10, ge=1)
    auth_rate_limit_per_address_per_minute: int = Field(default=60, ge=1)
    anonymous_introspection: bool = True
    # Trusted proxies whose X-Forwarded-For gives the client address (uvicorn's setting).
    forwarded_allow_ips: str | None = None

    # Email: real SMTP when SMTP_HOST is set, otherwise messages go to the server log.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    email_from: str = "Leadgraph <no-reply@localhost>"

    # Guards against expensive requests (README, Configuration, says what each one refuses).
    max_query_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_query_tokens: int = Field(default=5000, ge=1)
    max_document_bytes: int = Field(default=100_000, ge=1)
    # Any list argument (filter lists, nodes' ids, _entities' representations), literal or
    # variable: PostgreSQL takes at most 32,767 bind parameters per statement (DataLoaders
    # split their batches on their own, resolvers/loaders.py).
    max_list_size: int = Field(default=1000, ge=1, le=10_000)
    # A request body (/graphql's; an endpoint taking uploads would get its own, larger one).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Parsed documents kept for reuse, by estimated size (a document's text plus ~640 bytes a
    # token); one document may take at most an eighth of it, larger ones are parsed each time.
    document_cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    # Trusted documents (README, Trusted documents): requests by documentId or Apollo's APQ
    # hash. off: neither is understood; allow: both, besides free text; require: only
    # registered documents run, except for ADMIN/OWNER credentials.
    trusted_documents: Literal["off", "allow", "require"] = "allow"
    # The most documents APQ stores for callers below ADMIN (untrusted ones; a manifest's and
    # ADMIN/OWNER's are not counted): past it, a document sent with its hash runs without being
    # stored, so no key can grow the table without bound. 0: APQ stores none of theirs.
    apq_documents_max: int = Field(default=10_000, ge=0)

    # Cost and rate limits (README, Cost and rate limits). A document's static cost (object
    # fields 1, scalars 0, lists and connections times first/last or the default page size,
    # mutations 10) over MAX_QUERY_COST is refused before it runs; 0: no limit.
    max_query_cost: int = Field(default=1000, ge=0)
    # One leaky bucket of cost points per credential (API key, session; anonymous callers per
    # address), shared by every process: it holds RATE_LIMIT_MAXIMUM points and regains
    # RATE_LIMIT_RESTORE_RATE a second (an API key may have its own, createApiKey's rateLimit).
    # A process takes points from the shared bucket for RATE_LIMIT_LEASE_SECONDS at a time.
    rate_limits: bool = True
    rate_limit_maximum: int = Field(default=1000, ge=1)
    rate_limit_restore_rate: int = Field(default=50, ge=1)
    rate_limit_lease_seconds: float = Field(default=1.0, gt=0, le=60)

    # Subscriptions (README, Subscriptions). Events one subscription may have waiting to be
    # sent: a subscriber further behind is disconnected (close code 1013) and resumes with
    # `after`. How often the credentials of open subscriptions are looked up again (a revoked
    # session or key ends them). SQLite: how often a process looks for other processes'
    # commits (PostgreSQL's NOTIFY needs no polling).
    subscription_queue_size: int = Field(default=1000, ge=1)
    # Operations (subscriptions, and queries or mutations sent over the socket) running at once
    # on one WebSocket connection: one more is refused with an `error` message.
    subscriptions_per_connection: int = Field(default=100, ge=1)
    subscription_auth_check_seconds: float = Field(default=2, gt=0)
    subscription_poll_interval_ms: int = Field(default=100, ge=10, le=10_000)

    # Web forms (POST /forms/{key}, anonymous): posts per client address per minute, over
    # every form (past it: 429 with Retry-After), and the largest body taken.
    form_rate_limit_per_minute: int = Field(default=20, ge=1)
    form_max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    # SQLite page cache and memory map, per connection.
    sqlite_cache_size_kib: int = 65536
    sqlite_mmap_size: int = 268435456
    sqlite_busy_timeout_ms: int = 5000

    # Connection pool and statement timeout. On PostgreSQL the pool is the server's one pool
    # (per process); on SQLite it is the reader pool (the writer is always one connection).
    # 20: at 16 concurrent requests a pool of 5 or 10 opened and closed 25-50 connections a
    # second (overflow connections close when they come back); 16 and up, none.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # A statement running longer is cancelled and answered with a TIMEOUT error; 0 = no limit.
    db_statement_timeout_ms: int = Field(default=30000, ge=0)

    # The change-event log (README, Configuration): false makes writes append no events, so
    # history, webhooks and subscriptions see nothing while it is off. A measurement knob (the
    # bench's `nolog` side: what the log costs a write), not a way to run the server.
    # Where a phone number written without "+country code" is taken to be (ISO 3166 alpha-2),
    # when phones are compared: upserts, filters and duplicates use E.164.
    default_phone_region: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] = "US"
    event_log: bool = True

    # Webhooks (README, Webhooks). The sender runs inside `serve` unless this is false; `python
    # server.py worker` runs it alone. Any number of processes may run it on one database.
    webhook_sender: bool = True
    # Off: endpoint URLs must be https:// and resolve only to public addresses (checked when an
    # endpoint is saved and again before each request). On: any http(s) URL, for tests and
    # private networks.
    webhook_allow_private_urls: bool = False
    # No answer within this many seconds (DNS, connect, TLS, response head) fails the attempt.
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    # How long a claimed delivery is the claimer's: past it, another process sends it again (a
    # sender killed mid-request loses nothing). Longer than the timeout, or a slow receiver
    # would get each delivery twice.
    webhook_lease_seconds: float = Field(default=60, gt=0)
    # A failed attempt is retried after base * 2^(n-1) seconds (n: attempts so far), at most
    # max_delay, each +-25 % at random, while the retry falls within window seconds of the
    # first attempt: 5 s doubling to 4 h over a day makes about 17 attempts.
    webhook_retry_base_seconds: float = Field(default=5, gt=0)
    webhook_retry_max_delay_seconds: float = Field(default=4 * 3600, gt=0)
    webhook_retry_window_seconds: float = Field(default=24 * 3600, ge=0)
    # How often an idle sender looks for new events and due deliveries.
    webhook_poll_interval_seconds: float = Field(default=0.5, gt=0)
    # Deliveries claimed at once (and sent concurrently) by one process.
    webhook_batch_size: int = Field(default=100, ge=1, le=1000)

    # Bulk imports (README, Imports). The runner works through uploaded files inside `serve`
    # unless this is false (then in `server.py worker` processes); any number share the work.
    import_runner: bool = True
    # The largest body POST /imports/leads takes (413 past it, nothing kept).
    import_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    # Rows written per transaction, and how long a claimed job is its runner's without news
    # (each batch renews it): past it, another process resumes the job where it stopped.
    import_batch_rows: int = Field(default=2000, ge=1, le=10_000)
    import_lease_seconds: float = Field(default=30, gt=0)
    # Processes (per runner) that parse and validate an import's rows while it writes them;
    # 0: a thread of the runner's own process (slower: they share its GIL).
    import_workers: int = Field(default=1, ge=0, le=16)
    # How often an idle runner looks for queued jobs (an upload wakes its own process's).
    import_poll_interval_seconds: float = Field(default=1.0, gt=0)

    # Follow-up reminders (README, Follow-up reminders): one email to the assignee at dueAt
    # while the follow-up is OPEN, sent from inside `serve` and `server.py worker` unless this
    # is false; any number of processes may run it on one database (each reminder is claimed
    # once).
    follow_up_reminders: bool = True
    # How often the scheduler looks for reminders come due.
    reminder_poll_interval_seconds: float = Field(default=5.0, gt=0)

    # Retention (README, Retention and erasure): each workspace's policy is applied from inside
    # `serve` and `server.py worker` unless this is false, once every interval (a process
    # claims a workspace's run in the database: one at a time, whatever the processes).
    retention_schedule: bool = True
    retention_interval_seconds: float = Field(default=3600, gt=0)
    # Records removed per transaction, and the pause between two (the writer free for the
    # requests queued behind it: SQLite's busy handler retries a waiting writer every 50-100 ms
    # once it has waited a while, so a shorter pause is missed). bench/README.md, "Retention",
    # measured both defaults.
    retention_batch_size: int = Field(default=100, ge=1, le=10_000)
    retention_batch_pause_ms: float = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _lease_outlasts_timeout(self) -> Settings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "WEBHOOK_LEASE_SECONDS must be longer than WEBHOOK_TIMEOUT_SECONDS: a delivery "
                "still being sent would be claimed and sent again by another process"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
