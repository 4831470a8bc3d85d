"""The supervisor's bookkeeping, on real (tiny) processes: a child that keeps dying is
restarted after doubling pauses, counted, and called a crash loop in the state file that
`eventmart status`, /readyz and /metrics read; and the local cluster's configuration."""

from __future__ import annotations

import json
import sys
import time

import pytest
from rich.console import Console

from entrypoints.supervisor import Child, Supervisor
from eventmart import broker
from eventmart.metrics import Metrics
from eventmart.settings import Settings
from eventmart.supervision import read_state, trouble
from tests.support import wait_until


def test_a_child_that_keeps_dying_is_restarted_with_growing_pauses_and_called_a_crash_loop(
    tmp_path,
):
    dying = Child(
        "dying",
        "worker",
        args=[sys.executable, "-c", "raise SystemExit(3)"],
        log_path=tmp_path / "dying.log",
    )
    steady = Child(
        "steady",
        "relay",
        args=[sys.executable, "-c", "import time; time.sleep(60)"],
        log_path=tmp_path / "steady.log",
        warmup_seconds=0,
    )
    console = Console(file=(tmp_path / "console.txt").open("w"), width=200)
    supervisor = Supervisor([dying, steady], tmp_path, console)
    for child in (dying, steady):
        child.launch()
    pauses = []
    try:

        def looping() -> bool:
            supervisor.tick()
            if dying.next_start_at is not None and len(pauses) < dying.restarts:
                pauses.append(round(dying.next_start_at - time.monotonic(), 1))
            return dying.crash_looping

        wait_until(looping, timeout=30, interval=0.05, message="a crash loop")
        state = read_state(tmp_path)
        assert state is not None
        rows = {row["name"]: row for row in state["processes"]}
        assert rows["dying"]["state"] == "crash-looping" and rows["dying"]["restarts"] == 3
        assert rows["dying"]["last_exit"] == 3
        assert rows["steady"]["state"] == "running" and rows["steady"]["restarts"] == 0
        assert pauses[0] <= 0.5 and pauses[1] > pauses[0] and pauses[2] > pauses[1], pauses
        assert trouble(state) == ["dying crash-looping (#3)"]
        metrics = Metrics()
        metrics.record_supervision(state)
        text = metrics.render().decode()
        assert 'eventmart_supervised_crash_looping{process="dying"} 1.0' in text
        assert 'eventmart_supervised_restarts{process="dying"} 3.0' in text
        console.file.flush()
        assert "CRASH LOOP: dying" in (tmp_path / "console.txt").read_text()
    finally:
        for child in (dying, steady):
            if child.alive():
                child.process.kill()  # type: ignore[union-attr]


def test_no_state_file_or_a_dead_supervisor_is_no_stack(tmp_path):
    assert read_state(tmp_path) is None
    gone = {"supervisor_pid": 999999999, "updated_at": time.time(), "processes": []}
    (tmp_path / "supervisor.json").write_text(json.dumps(gone))
    assert read_state(tmp_path) is None


def test_three_nodes_share_a_quorum_of_all_three_with_ports_and_logs_of_their_own(tmp_path):
    settings = Settings(
        state_dir=tmp_path, kafka_port=9300, kafka_controller_port=9301, kafka_brokers=3
    )
    assert settings.bootstrap_servers == "127.0.0.1:9300,127.0.0.1:9302,127.0.0.1:9304"
    configs = [broker.write_config(settings, node).read_text() for node in (1, 2, 3)]
    voters = "controller.quorum.voters=1@127.0.0.1:9301,2@127.0.0.1:9303,3@127.0.0.1:9305"
    for node, config in enumerate(configs, start=1):
        assert f"node.id={node}\n" in config and voters in config
        assert f"log.dirs={tmp_path / 'kafka' / f'node-{node}' / 'data'}" in config
        assert "offsets.topic.replication.factor=3" in config
        assert "transaction.state.log.min.isr=2" in config and "min.insync.replicas=2" in config
    single = broker.write_config(Settings(state_dir=tmp_path / "one")).read_text()
    assert "controller.quorum.bootstrap.servers=" in single and "min.insync.replicas=1" in single


def test_the_catalogue_replicates_per_mode():
    assert {(s.replication_factor, s.min_insync_replicas) for s in broker.topic_specs()} == {(1, 1)}
    assert {
        (s.replication_factor, s.min_insync_replicas) for s in broker.topic_specs("cluster")
    } == {(3, 2)}


def test_two_brokers_are_refused():
    with pytest.raises(ValueError, match="use 1 or 3"):
        Settings(kafka_brokers=2)
