"""docs/configuration.md names every setting a process reads, so an operator can find it."""

from __future__ import annotations

from pathlib import Path

from eventmart.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
UNPREFIXED = {"database_url", "kafka_bootstrap_servers"}


def environment_name(field: str) -> str:
    return field.upper() if field in UNPREFIXED else f"EVENTMART_{field.upper()}"


def test_every_setting_is_documented():
    text = DOC.read_text()
    missing = [
        environment_name(name)
        for name in Settings.model_fields
        if environment_name(name) not in text
    ]
    assert missing == []
