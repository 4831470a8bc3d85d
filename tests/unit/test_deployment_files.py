"""docker-compose.yml cannot be run here (no Docker engine), so check that it parses and
runs exactly the processes the CLI and the local stack have."""

from __future__ import annotations

import yaml

from entrypoints.cli import app
from entrypoints.stack import Stack
from eventmart.broker import topic_specs
from eventmart.groups import BY_NAME, resolve
from eventmart.settings import PROJECT_ROOT, Settings
from eventmart.wiring import worker_names
from workers.consumer import build_app


def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def cli_commands() -> set[str]:
    return {command.name or command.callback.__name__ for command in app.registered_commands} | {
        group.name for group in app.registered_groups
    }


def test_compose_runs_the_cli_commands_the_stack_runs():
    services = compose()["services"]
    ours = {
        name: service
        for name, service in services.items()
        if service.get("image") == "eventmart:latest"
    }
    commands = [tuple(service["command"]) for service in ours.values()]
    for command in commands:
        assert command[0] in cli_commands(), f"{command} is not an eventmart command"
    assert ("api",) in commands and ("relay",) in commands and ("prepare",) in commands
    stack = {tuple(child.args[3:]) for child in Stack(Settings(worker_processes=None)).children}
    assert {command for command in commands if command[0] != "worker"} - {("prepare",)} == {
        command for command in stack if command[0] != "worker"
    }
    # Every consumer group in exactly one worker service, as in deploy/k8s/.
    hosted = [
        spec.name for command in commands if command[0] == "worker" for spec in resolve(command[1:])
    ]
    assert sorted(hosted) == sorted(BY_NAME)


def test_compose_workers_scale_with_no_fixed_names_or_host_ports():
    for name, service in compose()["services"].items():
        if service.get("command", [None])[0] == "worker":
            assert "container_name" not in service, name
            assert not service.get("ports"), f"{name}: a host port would stop `--scale`"
            assert "EVENTMART_WORKER_METRICS_PORT" in service["environment"]
    relay = compose()["services"]["relay"]
    assert relay["deploy"]["replicas"] == 2 and "container_name" not in relay  # active + standby


def test_compose_kafka_is_kraft_with_single_broker_internal_topics():
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1


def test_topic_catalogue_has_defaults_and_a_dlq_per_group():
    specs = {spec.name: spec for spec in topic_specs()}
    assert specs["orders.events"].partitions == 6
    assert specs["users.events"].retention_ms == -1
    for group in worker_names():
        assert f"{group}.dlq" in specs


def test_workers_keep_their_faust_directories_in_the_state_dir(tmp_path):
    """Faust makes `<app>-data/` in the working directory by default: a stack started from
    the checkout littered it with one per worker."""
    app = build_app("orders-saga", Settings(state_dir=tmp_path))
    assert app.conf.datadir.is_relative_to(tmp_path)
    assert app.conf.tabledir.is_relative_to(tmp_path)
    assert app.conf.datadir.parent.is_dir()  # Faust makes only the last level itself
