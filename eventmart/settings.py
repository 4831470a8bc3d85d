"""One settings class for every process; values come from the environment."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY_FILE = "secret_key"
MIN_PRODUCTION_KEY_BYTES = 32


class Settings(BaseSettings):
    """Everything a process needs to know; see docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="EVENTMART_", extra="ignore")

    env: str = Field(
        "dev",
        description="dev, test or prod; prod needs EVENTMART_SECRET_KEY of 32 bytes or more",
    )
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
    reviews_database_url: str | None = None
    pricing_database_url: str | None = None
    postgres_port: int = 5432
    database_name: str = "eventmart"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_brokers: int = Field(
        1,
        ge=1,
        le=5,
        description="Kafka nodes: the embedded cluster's size (node n listens on kafka_port + "
        "2(n-1), its controller on kafka_controller_port + 2(n-1)), or the external one's. "
        "1: replication 1/1; 3 or more: every topic (and the offsets and transaction-state "
        "topics) at 3 replicas, min.insync.replicas 2 (kafka/topics.yaml)",
    )
    # The embedded broker's JVM and threads, for a small machine (docs/benchmarks.md has
    # the measurement behind the defaults).
    kafka_heap: str = Field("384m", pattern=r"^[0-9]+[mg]$")
    kafka_jvm_options: str = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
    kafka_network_threads: int = Field(1, ge=1, le=64)
    kafka_io_threads: int = Field(2, ge=1, le=64)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # `up --tracing`: the local Jaeger's UI (its query gRPC on the next port) and OTLP/HTTP.
    jaeger_ui_port: int = Field(16686, ge=1, le=65534)
    jaeger_otlp_port: int = Field(4318, ge=1, le=65535)
    api_workers: int = Field(
        1,
        ge=1,
        description="API processes; login throttling is shared through PostgreSQL, the "
        "request histogram is per process",
    )

    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="larger request bodies are refused with 413"
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="a request head (line and headers) larger than this is refused with 431",
    )

    secret_key: str = Field(
        "",
        description="signs tokens and idempotency fingerprints. Unset in dev and test: a "
        "random key generated once per state directory (state_dir/secret_key, mode 0600), "
        "shared by every process of the stack. prod refuses to start without one of at "
        "least 32 bytes: several hosts must share it, so none may invent its own",
    )
    seal_personal_data: bool = Field(
        True,
        description="seal e-mails, names and addresses under their subject's key as events "
        "are stored (docs/security.md). Off only to measure sealing's cost: fields stored "
        "while it is off stay in clear, and an erasure cannot reach them. prod refuses off",
    )
    token_ttl_seconds: int = Field(3600, ge=1, description="lifetime of the tokens issued")
    token_max_lifetime_seconds: int = Field(
        86400,
        ge=1,
        description="a token whose exp - iat exceeds this is refused, whoever signed it",
    )
    token_issuer: str = Field("eventmart", description="the `iss` claim issued and required")
    token_audience: str = Field("eventmart-api", description="the `aud` claim issued and required")

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

    bcrypt_rounds: int = Field(12, ge=4, le=16)

    login_free_failures: int = Field(
        5,
        ge=1,
        description="wrong passwords an account may have before logins to it back off",
    )
    login_backoff_base_seconds: float = Field(
        1.0,
        gt=0,
        description="after n >= login_free_failures failures, the account's next attempt "
        "waits base * 2^(n - login_free_failures) seconds (a success resets the count)",
    )
    login_backoff_max_seconds: float = Field(
        900, gt=0, description="the longest an account's next attempt is made to wait"
    )
    login_failure_memory_seconds: float = Field(
        86400, gt=0, description="an account's failures are forgotten after this long quiet"
    )
    login_address_max_failures: int = Field(
        100,
        ge=1,
        description="failed logins one client address may make per window (generous: an "
        "office behind one NAT shares an address; successes never count)",
    )
    login_address_window_seconds: float = Field(
        900, gt=0, description="the window the per-address failure limit applies to"
    )
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For is believed; from any other peer the header is ignored",
    )
    metrics_allowed_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")],
        description="comma-separated addresses or networks whose requests to the API's "
        "/metrics are answered without a token (others need an admin's bearer token): "
        "it shows consumer lag, dead letters and request counts",
    )
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
    relay_max_tries: int = Field(
        3,
        ge=1,
        description="attempts at encoding or publishing one event before the relay parks it "
        "(and holds back its aggregate's later events) and moves on",
    )
    relay_max_lag_seconds: float = Field(
        60,
        gt=0,
        description="/readyz is not ready while an event older than this is unpublished "
        "(parked ones included)",
    )
    database_wait_seconds: int = Field(
        2,
        ge=1,
        description="how long an API request waits for a database connection before it "
        "answers 503 service_unavailable",
    )
    verified_purchase_wait_seconds: float = Field(
        3.0,
        ge=0,
        le=30,
        description="before a review is refused as not from a verified buyer, how long it may "
        "wait for the reviews context to read orders.events up to where it ends now (a buyer "
        "who saw the order delivered and reviews at once is not refused for the lag); 0: never",
    )
    unavailable_retry_after_seconds: int = Field(
        2, ge=1, description="the Retry-After of a 503 while PostgreSQL or Kafka is unreachable"
    )
    worker_max_tries: int = 3
    projection_fetch_wait_ms: int = Field(
        100,
        ge=0,
        le=5000,
        description="how long a projection's fetch waits for events to "
        "gather: read models lag by up to this much more, and apply fewer, fuller batches",
    )

    behavior_publish_timeout_seconds: float = Field(
        10,
        gt=0,
        le=120,
        description="how long POST /v1/events/view waits for Kafka to acknowledge a view "
        "before it answers 503 (a view is 202 only once the broker has it)",
    )
    behavior_linger_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="how long the API's behaviour producer lets views gather into one batch",
    )
    jaeger_url: str | None = Field(
        None,
        max_length=2000,
        pattern=r"^https?://",
        description="Jaeger's UI; when set, the operations console links each trace there",
    )
    recommender_models_dir: Path | None = Field(
        None,
        description="where recommender model versions are stored and served from; unset: "
        "state_dir/models/recommender",
    )
    recommender_reload_seconds: float = Field(
        1.0, gt=0, le=3600, description="how often the API looks for a newer model version"
    )
    recommender_retrain_interactions: int = Field(
        1000,
        ge=1,
        le=10_000_000,
        description="the recommender worker retrains once this many new interactions "
        "(views, confirmed orders) arrived since its last model",
    )
    recommender_training_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="the niceness of the recommender's training thread: training is "
        "background work, and on a machine it shares with the API and the saga it should "
        "give way to them (0 = as important as everything else)",
    )
    recommender_retrain_seconds: float = Field(
        3600,
        gt=0,
        description="the recommender worker also retrains this long after its last model "
        "when any new interaction arrived meanwhile",
    )

    recommender_full_retrain_seconds: float = Field(
        86400,
        gt=0,
        description="the recommender worker updates its model incrementally and trains it "
        "from scratch this long after the last full training (or on `eventmart analyst "
        "train-recs --full`)",
    )
    recommender_full_retrain_drift: float = Field(
        0.25,
        gt=0,
        le=100,
        description="...or once updates have added this share of the interactions the last "
        "full training saw (past it an updated model drifts from a full one: "
        "docs/recommendations.md)",
    )
    background_yield_lag: int = Field(
        200,
        ge=0,
        le=10_000_000,
        description="background work (recommender training) pauses while any saga group "
        "lags more than this many messages",
    )
    background_process_nice: int = Field(
        19,
        ge=0,
        le=19,
        description="the niceness of a worker process that hosts only background groups "
        "(the recommender, in its own process by default): the lowest priority",
    )
    background_max_pause_seconds: float = Field(
        300,
        gt=0,
        le=86400,
        description="the longest background work pauses for saga lag before it takes one step",
    )

    @field_validator("trusted_proxies", "metrics_allowed_networks", mode="before")
    @classmethod
    def split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [
                ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
            ]
        return value

    @model_validator(mode="after")
    def check_kafka_nodes(self) -> Settings:
        if self.kafka_brokers == 2:
            raise ValueError(
                "EVENTMART_KAFKA_BROKERS=2 cannot keep 3 replicas nor a controller majority "
                "through the loss of one node: use 1 or 3"
            )
        ports = [port for pair in self.kafka_node_ports() for port in pair]
        if len(set(ports)) != len(ports):
            raise ValueError(
                "the Kafka nodes' ports collide: node n takes kafka_port + 2(n-1) and "
                "kafka_controller_port + 2(n-1)"
            )
        return self

    @model_validator(mode="after")
    def resolve_secret_key(self) -> Settings:
        if self.env == "prod":
            if not self.secret_key:
                raise ValueError("EVENTMART_SECRET_KEY must be set in prod")
            if len(self.secret_key.encode()) < MIN_PRODUCTION_KEY_BYTES:
                raise ValueError(
                    f"EVENTMART_SECRET_KEY must be at least {MIN_PRODUCTION_KEY_BYTES} bytes in prod"
                )
            if not self.seal_personal_data:
                raise ValueError("EVENTMART_SEAL_PERSONAL_DATA must stay on in prod")
        elif not self.secret_key:
            self.secret_key = state_secret_key(self.state_dir)
        if self.token_ttl_seconds > self.token_max_lifetime_seconds:
            raise ValueError("token_ttl_seconds must not exceed token_max_lifetime_seconds")
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
    def models_dir(self) -> Path:
        return self.recommender_models_dir or self.state_dir / "models" / "recommender"

    @property
    def kafka_replication_mode(self) -> str:
        """The topic catalogue's replication mode (kafka/topics.yaml `replication`)."""
        return "cluster" if self.kafka_brokers >= 3 else "single"

    def kafka_node_ports(self) -> list[tuple[int, int]]:
        """(broker port, controller port) of each embedded node, node 1 first."""
        return [
            (self.kafka_port + 2 * index, self.kafka_controller_port + 2 * index)
            for index in range(self.kafka_brokers)
        ]

    @property
    def bootstrap_servers(self) -> str:
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        return ",".join(f"127.0.0.1:{port}" for port, _ in self.kafka_node_ports())


def state_secret_key(state_dir: Path) -> str:
    """The state directory's key, generated on first use: 32 random bytes, readable by its
    owner only. Written beside and hard-linked into place, so processes starting together
    all read the one key that won, never a half-written file."""
    path = state_dir / SECRET_KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        draft = state_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process of the stack made it first: use theirs
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty; delete it to have a new key generated")
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
