"""The Kafka broker: fetch the pinned release from Maven Central, format KRaft storage
once, start one node or a local cluster of them (EVENTMART_KAFKA_BROKERS), and create the
catalogue's topics replicated as the mode says."""

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


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


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
        done = _run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(KAFKA_DIR / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ]
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


def nodes(settings: Settings) -> list[int]:
    """The embedded nodes' ids, 1 first."""
    return list(range(1, settings.kafka_brokers + 1))


def node_dir(settings: Settings, node: int) -> Path:
    """One node's config, log and data. A single broker keeps the layout it always had
    (state_dir/kafka/data), so existing state directories keep their log."""
    if settings.kafka_brokers == 1:
        return kafka_state_dir(settings)
    return kafka_state_dir(settings) / f"node-{node}"


def replication(mode: str, declared: dict[str, str] | None = None) -> tuple[int, int]:
    """(replicas, min.insync.replicas) of a replication mode, from the catalogue's
    `replication: {single: 1/1, cluster: 3/2}` (a topic's own, else the defaults')."""
    table = declared or catalogue()["defaults"]["replication"]
    replicas, _, min_insync = str(table[mode]).partition("/")
    return int(replicas), int(min_insync)


def write_config(settings: Settings, node: int = 1) -> Path:
    directory = node_dir(settings, node)
    directory.mkdir(parents=True, exist_ok=True)
    port, controller_port = settings.kafka_node_ports()[node - 1]
    if settings.kafka_brokers == 1:
        # A dynamic quorum of one, formatted --standalone.
        quorum = f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}"
    else:
        # A static quorum: every node is a voter, so a majority survives losing one.
        voters = ",".join(
            f"{n}@127.0.0.1:{ports[1]}"
            for n, ports in zip(nodes(settings), settings.kafka_node_ports(), strict=True)
        )
        quorum = f"controller.quorum.voters={voters}"
    replicas, min_insync = replication(settings.kafka_replication_mode)
    template = (KAFKA_DIR / "server.properties").read_text()
    config = template.format(
        node_id=node,
        quorum=quorum,
        port=port,
        controller_port=controller_port,
        log_dirs=directory / "data",
        network_threads=settings.kafka_network_threads,
        io_threads=settings.kafka_io_threads,
        replicas=replicas,
        min_insync=min_insync,
    )
    path = directory / "server.properties"
    path.write_text(config)
    return path


def _check_layout(settings: Settings) -> None:
    """A state directory's log was made for one number of nodes: another number would
    start an empty cluster while PostgreSQL says every event was published."""
    marker = kafka_state_dir(settings) / "nodes"
    if marker.exists():
        made_for = int(marker.read_text())
        if made_for != settings.kafka_brokers:
            raise BrokerUnavailable(
                f"{kafka_state_dir(settings)} holds a {made_for}-node Kafka log; "
                f"EVENTMART_KAFKA_BROKERS={settings.kafka_brokers} needs another state "
                "directory (EVENTMART_STATE_DIR)"
            )
    elif (kafka_state_dir(settings) / "data" / "meta.properties").exists():
        if settings.kafka_brokers != 1:
            raise BrokerUnavailable(
                f"{kafka_state_dir(settings)} holds a single broker's log; a cluster needs "
                "another state directory (EVENTMART_STATE_DIR)"
            )
    else:
        kafka_state_dir(settings).mkdir(parents=True, exist_ok=True)
        marker.write_text(str(settings.kafka_brokers))


def format_storage(settings: Settings) -> None:
    """Format each node's KRaft storage the first time only (one cluster id for all), so
    a restart keeps the log."""
    _check_layout(settings)
    id_file = kafka_state_dir(settings) / "cluster-id"
    if not id_file.exists():
        id_file.write_text(uuid.uuid4().hex[:22])
    cluster_id = id_file.read_text().strip()
    for node in nodes(settings):
        config = write_config(settings, node)
        if (node_dir(settings, node) / "data" / "meta.properties").exists():
            continue
        standalone = ["--standalone"] if settings.kafka_brokers == 1 else []
        format_args = ["format", "-t", cluster_id, "-c", str(config), *standalone]
        done = _run(_java(settings, "kafka.tools.StorageTool", *format_args))
        if done.returncode != 0:
            raise BrokerUnavailable(
                f"formatting Kafka storage (node {node}) failed:\n{done.stdout}{done.stderr}"
            )


def node_command(settings: Settings, node: int) -> list[str]:
    return _java(
        settings,
        "kafka.Kafka",
        str(node_dir(settings, node) / "server.properties"),
        heap=settings.kafka_heap,
        options=settings.kafka_jvm_options,
    )


def spawn_node(settings: Settings, node: int) -> subprocess.Popen[bytes]:
    """Start one node (formatted already) as a child process, without waiting for it."""
    write_config(settings, node)
    log = open(node_dir(settings, node) / "server.log", "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        node_command(settings, node),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_embedded(settings: Settings) -> list[subprocess.Popen[bytes]]:
    """Start every node as a child process, and wait until the cluster answers; the
    caller owns their lifetime."""
    fetch_broker(settings)
    format_storage(settings)
    processes = [spawn_node(settings, node) for node in nodes(settings)]
    try:
        wait_for_broker(settings.bootstrap_servers, timeout=120, processes=processes)
        if settings.kafka_brokers > 1:
            wait_for_nodes(settings.bootstrap_servers, settings.kafka_brokers, timeout=120)
    except BrokerUnavailable:
        for process in processes:
            process.kill()
        raise
    return processes


async def cluster_nodes(bootstrap: str) -> int:
    """How many brokers the cluster's metadata lists now."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        described = await admin.describe_cluster()
        return len(described["brokers"])
    finally:
        await admin.close()


def wait_for_nodes(bootstrap: str, count: int, *, timeout: float) -> None:
    """Until `count` brokers are registered (topics with 3 replicas need all three)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            joined = asyncio.run(cluster_nodes(bootstrap))
        except Exception:  # noqa: BLE001 - keep trying until the deadline
            joined = 0
        if joined >= count:
            return
        time.sleep(0.5)
    raise BrokerUnavailable(f"fewer than {count} Kafka nodes joined within {timeout:.0f}s")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def any_port_open(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port_open(host, int(port)):
            return True
    return False


def wait_for_broker(
    bootstrap: str, *, timeout: float, processes: list[subprocess.Popen[bytes]] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes or []:
            if process.poll() is not None:
                raise BrokerUnavailable(
                    f"a Kafka node exited with {process.returncode}; see its server.log"
                )
        if not any_port_open(bootstrap):
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
    min_insync_replicas: int = 1


def catalogue() -> dict[str, Any]:
    """kafka/topics.yaml as it is written (see the comments there)."""
    loaded: dict[str, Any] = yaml.safe_load((KAFKA_DIR / "topics.yaml").read_text())
    return loaded


def consumer_groups() -> dict[str, list[str]]:
    return {group["name"]: list(group["topics"]) for group in catalogue()["consumer_groups"]}


def topic_specs(mode: str = "single") -> list[TopicSpec]:
    """The catalogue's topics with the replication of `mode` (`single` or `cluster`)."""
    data = catalogue()
    defaults = data["defaults"]
    replicas, min_insync = replication(mode)
    specs = []
    for topic in data["topics"]:
        own_replicas, own_min_insync = replication(mode, topic.get("replication"))
        specs.append(
            TopicSpec(
                name=topic["name"],
                partitions=topic.get("partitions", defaults["partitions"]),
                replication_factor=own_replicas,
                min_insync_replicas=own_min_insync,
                retention_ms=topic.get("retention_ms", defaults["retention_ms"]),
                key=topic["key"],
                schema_version=topic["schema_version"],
            )
        )
    for group in consumer_groups():
        specs.append(
            TopicSpec(
                name=f"{group}.dlq",
                partitions=1,
                key="original key",
                replication_factor=replicas,
                min_insync_replicas=min_insync,
                retention_ms=data["dlq"]["retention_ms"],
                schema_version=1,
            )
        )
    return specs


async def create_topics(
    bootstrap: str, specs: list[TopicSpec] | None = None, *, mode: str = "single"
) -> list[str]:
    """Create the catalogue's missing topics (replicated as `mode` says); existing ones
    are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    specs = specs if specs is not None else topic_specs(mode)
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
                            topic_configs={
                                "retention.ms": str(spec.retention_ms),
                                "min.insync.replicas": str(spec.min_insync_replicas),
                            },
                        )
                        for spec in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another process created them meanwhile
        return [spec.name for spec in missing]
    finally:
        await admin.close()
