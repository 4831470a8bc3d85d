"""deploy/k8s/ rendered by the pinned kustomize (deploy/k8s/kustomize builds it once into the
cache) for both overlays, and checked against what it describes: the core kinds against
Kubernetes' own schemas (kubernetes-validate), every container command against the
`eventmart` CLI, every environment variable against the settings class, the KafkaTopics
against kafka/topics.yaml, the worker Deployments against the consumer-group registry."""

from __future__ import annotations

import importlib
import runpy
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml
from pydantic.fields import FieldInfo

from eventmart.broker import pinned_version, topic_specs
from eventmart.groups import BY_NAME, resolve
from eventmart.metrics import WORKER_METRICS_PORT_ENV
from eventmart.settings import PROJECT_ROOT, Settings
from workers.groups import consumed_topics

DEPLOY = PROJECT_ROOT / "deploy" / "k8s"
OVERLAYS = ("small", "production")
KUBERNETES_VERSION = "1.31"  # the oldest minor the manifests are written for
# The operators' API groups: Kubernetes' schemas do not know their kinds, so the fields that
# EventMart relies on are checked below instead. Anything else must validate.
OPERATOR_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io"}
SECRET_SETTINGS = {"secret_key", "database_url"} | {
    name for name in Settings.model_fields if name.endswith("_database_url")
}


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        [str(DEPLOY / "kustomize"), "build", str(DEPLOY / "overlays" / overlay)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"kustomize build {overlay} failed:\n{done.stderr}"
    return tuple(document for document in yaml.safe_load_all(done.stdout) if document)


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in render(overlay) if doc["kind"] == kind}


def containers(overlay: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Deployment, container) for every container and init container of EventMart's."""
    for name, deployment in of_kind(overlay, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield name, container


def console_script() -> tuple[str, Any]:
    """The `eventmart` console script of pyproject.toml, and the Typer app behind it."""
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (name, target), *_ = scripts.items()
    module = importlib.import_module(target.partition(":")[0])
    apps = [value for value in vars(module).values() if isinstance(value, typer.Typer)]
    nested = {id(group.typer_instance) for app in apps for group in app.registered_groups}
    (app,) = [app for app in apps if id(app) not in nested]  # the root: no one's subcommand
    return name, typer.main.get_command(app)


def parse(command: Any, name: str, args: list[str], parent: Any = None) -> Any:
    """Parse `args` as the CLI would, without running anything: the context of the command
    they name, with its parameters; an unknown command or option raises."""
    if hasattr(command, "get_command"):  # a group: the next word names its subcommand
        context = command.make_context(name, [], parent=parent, resilient_parsing=True)
        assert args, f"{name} needs a subcommand"
        sub = command.get_command(context, args[0])
        assert sub is not None, f"{args[0]!r} is no command of {name}"
        return parse(sub, args[0], args[1:], context)
    return command.make_context(name, list(args), parent=parent, resilient_parsing=False)


def env_name(field_name: str, field: FieldInfo) -> str:
    """The environment variable of one setting: its alias, or the prefix and its name."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    return f"{Settings.model_config.get('env_prefix', '')}{field_name}".upper()


def settings_env_names(fields: Mapping[str, FieldInfo] = Settings.model_fields) -> dict[str, str]:
    """Every environment variable the settings class reads -> the setting it sets."""
    return {env_name(name, field): name for name, field in fields.items()}


def unknown_variables(
    overlay: str, fields: Mapping[str, FieldInfo] = Settings.model_fields
) -> list[str]:
    """Variables of any EventMart container that no setting reads."""
    known = set(settings_env_names(fields)) | {WORKER_METRICS_PORT_ENV}
    return sorted(
        {name for _, container in containers(overlay) for name in environment(overlay, container)}
        - known
    )


def environment(overlay: str, container: dict[str, Any]) -> dict[str, Any]:
    """A container's variables: its ConfigMaps' keys (envFrom) and its own `env`."""
    config_maps = of_kind(overlay, "ConfigMap")
    variables: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        variables.update(config_maps[source["configMapRef"]["name"]]["data"])
    variables.update({entry["name"]: entry for entry in container.get("env", [])})
    return variables


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_core_kinds_are_valid_kubernetes(overlay):
    checked = set()
    for document in render(overlay):
        if document["apiVersion"].partition("/")[0] in OPERATOR_GROUPS:
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        checked.add(document["kind"])
    assert {"Deployment", "HorizontalPodAutoscaler", "Service", "ConfigMap"} <= checked


def test_the_validator_refuses_what_kubernetes_would():
    """It is a real check: a misspelt field fails it."""
    deployment = dict(of_kind("small", "Deployment")["eventmart-api"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_a_real_eventmart_command(overlay):
    script, cli = console_script()
    commands = {}
    for deployment, container in containers(overlay):
        program, *args = container["command"]
        assert program == script, f"{deployment}: {program} is not the `{script}` command"
        context = parse(cli, script, args)
        if context.info_name == "worker":
            resolve(context.params["names"])  # real groups or sets, or UnknownGroup
        commands[deployment, container["name"]] = args
    assert ["api"] in commands.values() and ["relay"] in commands.values()
    # The relay: one active, one hot standby (they elect the active one by an advisory lock).
    assert of_kind(overlay, "Deployment")["eventmart-relay"]["spec"]["replicas"] == 2
    with pytest.raises(Exception, match="No such option"):
        parse(cli, script, ["prepare", "--no-such-option"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_consumer_group_runs_in_one_worker_deployment_within_its_partitions(overlay):
    script, cli = console_script()
    partitions = {spec.name: spec.partitions for spec in topic_specs()}
    consumed = consumed_topics()  # each group's topics, as its code declares them
    hosted: dict[str, str] = {}
    for name, deployment in of_kind(overlay, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        context = parse(cli, script, container["command"][1:])
        if context.info_name != "worker":
            continue
        replicas = deployment["spec"].get("replicas", 1)
        for group in resolve(context.params["names"]):
            assert group.name not in hosted, f"{group.name} in {hosted.get(group.name)} and {name}"
            hosted[group.name] = name
            most = min(partitions[topic] for topic in consumed[group.name])
            assert replicas <= most, (
                f"{name}: {replicas} replicas of {group.name}, {most} partitions"
            )
    assert sorted(hosted) == sorted(BY_NAME)
    # The recommender counts in memory and trains on the whole log: one, and never two.
    recommender = of_kind(overlay, "Deployment")[hosted["recommender"]]
    assert recommender["spec"]["replicas"] == 1
    assert recommender["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_is_a_setting_and_the_settings_accept_the_values(overlay, monkeypatch):
    assert unknown_variables(overlay) == []
    for _, container in containers(overlay):
        variables = environment(overlay, container)
        for name, value in variables.items():
            monkeypatch.setenv(name, value if isinstance(value, str) else "x" * 32)
        Settings()  # the literal values validate (32 bytes stand in for each Secret's)
        for name in variables:
            monkeypatch.delenv(name)


def test_a_renamed_setting_fails_the_check():
    fields = dict(Settings.model_fields)
    fields["recommender_model_dir"] = fields.pop("recommender_models_dir")
    assert unknown_variables("small", fields) == ["EVENTMART_RECOMMENDER_MODELS_DIR"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_from_secrets_and_each_context_from_its_own_cluster(overlay):
    clusters = of_kind(overlay, "Cluster")
    setting = settings_env_names()
    for deployment, container in containers(overlay):
        variables = environment(overlay, container)
        for name, value in variables.items():
            if setting.get(name) in SECRET_SETTINGS:
                assert isinstance(value, dict) and "secretKeyRef" in value.get("valueFrom", {}), (
                    f"{deployment}: {name} is a secret and must come from a Secret"
                )
        databases = {
            setting[name]: value["valueFrom"]["secretKeyRef"]
            for name, value in variables.items()
            if setting.get(name, "").endswith("database_url")
        }
        contexts = {"database_url": "shared"} | {
            f"{context}_database_url": context for context in Settings().context_dsns()
        }
        assert set(databases) == set(contexts), f"{deployment}: {sorted(databases)}"
        for field, context in contexts.items():
            cluster = f"eventmart-{context}"
            assert cluster in clusters, f"no CloudNativePG Cluster {cluster}"
            assert databases[field] == {"name": f"{cluster}-app", "key": "uri"}
        assert variables["EVENTMART_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "eventmart"
    for cluster in clusters.values():
        assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
        assert cluster["spec"]["instances"] >= 1
        assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "eventmart"
    if overlay == "production":
        assert all(cluster["spec"]["instances"] == 3 for cluster in clusters.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_topics_are_the_catalogue(overlay):
    topics = {doc["spec"]["topicName"]: doc for doc in of_kind(overlay, "KafkaTopic").values()}
    specs = {spec.name: spec for spec in topic_specs()}
    assert sorted(topics) == sorted(specs), (
        "regenerate: .venv/bin/python deploy/k8s/kafka_topics.py"
    )
    for name, spec in specs.items():
        topic = topics[name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "eventmart"
        assert topic["spec"]["partitions"] == spec.partitions, name
        assert topic["spec"]["config"]["retention.ms"] == spec.retention_ms, name
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_is_three_kraft_nodes_of_the_pinned_version(overlay):
    (kafka,) = of_kind(overlay, "Kafka").values()
    (pool,) = of_kind(overlay, "KafkaNodePool").values()
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert kafka["spec"]["kafka"]["version"] == pinned_version()
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert config["auto.create.topics.enable"] is False
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    bootstrap = of_kind(overlay, "ConfigMap")["eventmart-settings"]["data"]
    assert (
        bootstrap["KAFKA_BOOTSTRAP_SERVERS"] == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_endpoints_the_processes_serve(overlay):
    from api.routes.health import router

    api_paths = {route.path for route in router.routes}  # type: ignore[attr-defined]
    config = of_kind(overlay, "ConfigMap")["eventmart-settings"]["data"]
    for deployment, container in containers(overlay):
        if container["name"] != "eventmart":
            continue
        ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        probes = [container[key] for key in ("readinessProbe", "livenessProbe") if key in container]
        if container["command"][1] == "api":
            assert ports["http"] == int(config["EVENTMART_API_PORT"])
            assert {probe["httpGet"]["path"] for probe in probes} <= api_paths
        elif container["command"][1] == "worker":
            port = environment(overlay, container)[WORKER_METRICS_PORT_ENV]["value"]
            assert ports["metrics"] == int(port)
            assert probes and all(probe["httpGet"]["port"] == "metrics" for probe in probes)
        assert "cpu" in container["resources"]["requests"], deployment


def test_production_asks_for_at_least_what_small_does():
    def cpu(value: str) -> float:
        return float(value[:-1]) / 1000 if value.endswith("m") else float(value)

    small = {name: container for name, container in containers("small")}  # the last: eventmart
    for deployment, container in containers("production"):
        if container["name"] == "eventmart":
            ours = cpu(container["resources"]["requests"]["cpu"])
            theirs = cpu(small[deployment]["resources"]["requests"]["cpu"])
            assert ours >= theirs, deployment
    hpa = of_kind("production", "HorizontalPodAutoscaler")["eventmart-api"]["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]


def test_the_committed_kafka_topics_are_what_the_generator_writes():
    generator = runpy.run_path(str(DEPLOY / "kafka_topics.py"))  # not __main__: writes nothing
    assert (DEPLOY / "base" / "kafka-topics.yaml").read_text() == generator["render"](), (
        "regenerate: .venv/bin/python deploy/k8s/kafka_topics.py"
    )


def test_compose_sets_only_settings_too():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    known = set(settings_env_names()) | {WORKER_METRICS_PORT_ENV}
    for name, service in compose["services"].items():
        if service.get("image") == "eventmart:latest":
            assert sorted(set(service["environment"]) - known) == [], name
