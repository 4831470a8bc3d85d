"""Writes deploy/k8s/base/kafka-topics.yaml, the catalogue (kafka/topics.yaml) as Strimzi
`KafkaTopic`s: run it after changing the catalogue, and tests/unit/test_k8s_manifests.py
checks that the two agree.

    .venv/bin/python deploy/k8s/kafka_topics.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eventmart.broker import topic_specs

KAFKA_CLUSTER = "eventmart"  # the Strimzi `Kafka` of base/kafka.yaml
# The three-node cluster takes the catalogue's `cluster` replication (kafka/topics.yaml:
# three replicas, a write acknowledged by two with acks=all), so one broker may be away
# without refusing or losing a write.
OUTPUT = Path(__file__).parent / "base" / "kafka-topics.yaml"


def kafka_topics() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {"name": spec.name, "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
            "spec": {
                "topicName": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication_factor,
                "config": {
                    "retention.ms": spec.retention_ms,
                    "min.insync.replicas": spec.min_insync_replicas,
                },
            },
        }
        for spec in topic_specs("cluster")
    ]


def render() -> str:
    header = (
        "# Generated from kafka/topics.yaml by deploy/k8s/kafka_topics.py: edit the catalogue,\n"
        "# then run `.venv/bin/python deploy/k8s/kafka_topics.py`.\n"
    )
    return header + yaml.safe_dump_all(kafka_topics(), sort_keys=False)


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
