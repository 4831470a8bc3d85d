"""The Kafka broker: fetch the pinned release from Maven Central, format KRaft storage
once, start it, and create the catalogue's topics."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from eventmart.settings import PROJECT_ROOT, Settings

KAFKA_DIR = PROJECT_ROOT / "kafka"


class BrokerUnavailable(RuntimeError):
    """Kafka cannot be fetched, started or reached."""


def pinned_version() -> str:
    pom = (KAFKA_DIR / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match, "kafka/pom.xml must pin <kafka.version>"
    return match.group(1)


def libs_dir(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{pinned_version()}" / "libs"


def fetch_broker(settings: Settings, console: Console | None = None) -> Path:
    """Resolve the broker's jars with Maven once; later runs reuse the cache."""
    libs = libs_dir(settings)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise BrokerUnavailable("Java 17 and Maven are needed to fetch and run the Kafka broker")
    console = console or Console(stderr=True)
    libs.mkdir(parents=True, exist_ok=True)
    with console.status(
        f"Fetching Apache Kafka {pinned_version()} from Maven Central (first run only)…"
    ):
        done = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(KAFKA_DIR / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise BrokerUnavailable(
            f"mvn could not resolve the broker:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    marker.touch()
    console.print(f"[green]✓[/] Kafka {pinned_version()} cached in {libs}")
    return libs


def kafka_state_dir(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def _java(
    settings: Settings, main_class: str, *args: str, heap: str = "256m", options: str = ""
) -> list[str]:
    return [
        "java",
        f"-Xmx{heap}",
        f"-Xms{heap}",
        *(options.split() or ["-XX:+UseG1GC"]),
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}",
        "-cp",
        f"{libs_dir(settings)}/*",
        main_class,
        *args,
    ]


def write_config(settings: Settings) -> Path:
    state = kafka_state_dir(settings)
    state.mkdir(parents=True, exist_ok=True)
    template = (KAFKA_DIR / "server.properties").read_text()
    config = template.format(
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        log_dirs=state / "data",
        network_threads=settings.kafka_network_threads,
        io_threads=settings.kafka_io_threads,
    )
    path = state / "server.properties"
    path.write_text(config)
    return path


def format_storage(settings: Settings) -> None:
    """Format KRaft storage the first time only, so a restart keeps the log."""
    config = write_config(settings)
    if (kafka_state_dir(settings) / "data" / "meta.properties").exists():
        return
    cluster_id = uuid.uuid4().hex[:22]
    done = subprocess.run(
        _java(
            settings,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            "--standalone",
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BrokerUnavailable(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")


def start_embedded(settings: Settings) -> subprocess.Popen[bytes]:
    """Start the broker as a child process; the caller owns its lifetime."""
    fetch_broker(settings)
    format_storage(settings)
    log = open(kafka_state_dir(settings) / "server.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(
        _java(
            settings,
            "kafka.Kafka",
            str(kafka_state_dir(settings) / "server.properties"),
            heap=settings.kafka_heap,
            options=settings.kafka_jvm_options,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_broker(settings.bootstrap_servers, timeout=90, process=process)
    except BrokerUnavailable:
        process.kill()
        raise
    return process


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_for_broker(
    bootstrap: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerUnavailable(
                f"the broker exited with {process.returncode}; see its server.log"
            )
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        if not port_open(host, int(port)):
            time.sleep(0.2)
            continue
        try:
            asyncio.run(list_topics(bootstrap))
            return
        except Exception:  # noqa: BLE001 - keep trying until the deadline
            time.sleep(0.3)
    raise BrokerUnavailable(f"Kafka at {bootstrap} did not answer within {timeout:.0f}s")


async def list_topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    key: str
    schema_version: int


def catalogue() -> dict[str, Any]:
    """kafka/topics.yaml as it is written (see the comments there)."""
    loaded: dict[str, Any] = yaml.safe_load((KAFKA_DIR / "topics.yaml").read_text())
    return loaded


def consumer_groups() -> dict[str, list[str]]:
    return {group["name"]: list(group["topics"]) for group in catalogue()["consumer_groups"]}


def topic_specs() -> list[TopicSpec]:
    data = catalogue()
    defaults = data["defaults"]
    specs = [
        TopicSpec(
            name=topic["name"],
            partitions=topic.get("partitions", defaults["partitions"]),
            replication_factor=topic.get("replication_factor", defaults["replication_factor"]),
            retention_ms=topic.get("retention_ms", defaults["retention_ms"]),
            key=topic["key"],
            schema_version=topic["schema_version"],
        )
        for topic in data["topics"]
    ]
    for group in consumer_groups():
        specs.append(
            TopicSpec(
                name=f"{group}.dlq",
                partitions=1,
                key="original key",
                replication_factor=defaults["replication_factor"],
                retention_ms=data["dlq"]["retention_ms"],
                schema_version=1,
            )
        )
    return specs


async def create_topics(bootstrap: str, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the catalogue's missing topics; existing ones are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    specs = specs if specs is not None else topic_specs()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            spec.replication_factor,
                            topic_configs={"retention.ms": str(spec.retention_ms)},
                        )
                        for spec in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
        return [spec.name for spec in missing]
    finally:
        await admin.close()
