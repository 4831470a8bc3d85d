"""Schemathesis checks of our own, loaded by the fuzz run (SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def no_server_error_but_catching_up(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the 503 a read model answers while it catches up with a write made a
    moment before (`not_yet_visible`, with Retry-After): that one is the contract."""
    if response.status_code < 500:
        return None
    code = None
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        pass
    catching_up = response.status_code == 503 and code == "not_yet_visible"
    if not (catching_up and response.headers.get("retry-after")):
        raise AssertionError(f"server error {response.status_code} ({code})")
    return None
