"""One settings class for every process; values come from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    """Everything a process needs to know; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="EVENTMART_", extra="ignore")

    env: str = Field("dev", description="dev, test or prod; prod refuses the dev secret")
    state_dir: Path = Field(PROJECT_ROOT / ".eventmart", description="embedded data lives here")
    cache_dir: Path = Field(Path.home() / ".cache" / "eventmart", description="broker jars")

    database_url: str | None = Field(
        None, validation_alias="DATABASE_URL", description="external PostgreSQL; embedded if unset"
    )
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="external Kafka; embedded if unset",
    )
    # Each bounded context may have a PostgreSQL of its own (docs/scaling.md): its event
    # store, its saga participant's tracking and the read models it owns. Unset: DATABASE_URL.
    users_database_url: str | None = None
    catalog_database_url: str | None = None
    inventory_database_url: str | None = None
    orders_database_url: str | None = None
    payments_database_url: str | None = None
    shipping_database_url: str | None = None
    postgres_port: int = 5432
    database_name: str = "eventmart"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(
        1,
        ge=1,
        description="API processes; login throttling and the request histogram are per process",
    )

    api_max_in_flight: int = Field(
        100,
        ge=1,
        description="requests an API process serves at once; more are answered 503 "
        "`overloaded` with Retry-After (health, readiness and metrics never are)",
    )
    api_keepalive_seconds: int = Field(
        75,
        ge=1,
        description="how long the API keeps an idle connection open: longer than clients' "
        "and proxies' own idle timeouts, so they close first and never send on a connection "
        "the server is closing (a reset)",
    )

    secret_key: str = DEV_SECRET
    token_ttl_seconds: int = 3600
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    login_attempts_per_minute: int = 10
    currency: str = "CNY"

    payment_timeout_seconds: float = Field(
        900, description="unpaid orders are cancelled after this"
    )
    reservation_ttl_seconds: float = Field(1800, description="stock holds expire after this")
    auto_complete_seconds: float = Field(
        7 * 24 * 3600, description="delivered -> completed after this"
    )
    carrier_step_seconds: float = Field(
        60, description="sandbox carrier: time between tracking updates"
    )
    saga_timer_seconds: float = Field(1.0, description="how often workers look for due deadlines")

    worker_processes: str | None = Field(
        None,
        description="the worker processes `eventmart up` runs, separated by spaces, each a "
        "comma-separated list of consumer groups or sets (e.g. `sagas projections`, `all`); "
        "unset: eventmart.groups.WORKER_PROCESSES",
    )

    worker_switch_interval_ms: float = Field(
        5.0,
        gt=0,
        le=100,
        description="how long a worker process's thread may hold the interpreter lock while "
        "another waits for it (Python's sys.setswitchinterval; its default is 5 ms)",
    )

    relay_batch_size: int = 500
    relay_poll_seconds: float = 1.0
    worker_max_tries: int = 3
    projection_fetch_wait_ms: int = Field(
        100,
        ge=0,
        le=5000,
        description="how long a projection's fetch waits for events to "
        "gather: read models lag by up to this much more, and apply fewer, fuller batches",
    )

    @model_validator(mode="after")
    def refuse_dev_secret_outside_dev(self) -> Settings:
        if self.env not in ("dev", "test") and self.secret_key == DEV_SECRET:
            raise ValueError("EVENTMART_SECRET_KEY must be set outside dev and test")
        return self

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/{self.database_name}"

    def context_dsn(self, context: str) -> str:
        """The database of one bounded context: EVENTMART_<CONTEXT>_DATABASE_URL, else the
        shared one."""
        own: str | None = getattr(self, f"{context}_database_url", None)
        return own or self.dsn

    def context_dsns(self) -> dict[str, str]:
        """Every context with a database setting -> its database."""
        return {
            name.removesuffix("_database_url"): self.context_dsn(name.removesuffix("_database_url"))
            for name in type(self).model_fields
            if name.endswith("_database_url") and name != "database_url"
        }

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
