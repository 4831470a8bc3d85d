"""Query parameters several routes share: pages, and bounded free text."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from eventmart.contracts.bounds import safe_text_pattern
from projections.cursors import CURSOR_PATTERN, MAX_CURSOR_LENGTH

Limit = Annotated[int, Query(ge=1, le=100, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        pattern=CURSOR_PATTERN,
        description="the previous page's `next_cursor`; any other value is 422 `invalid_cursor`",
    ),
]


def text_query(max_length: int, *, min_length: int = 0, description: str | None = None) -> Any:
    """A free-text query parameter: bounded, without control characters."""
    return Query(
        min_length=min_length,
        max_length=max_length,
        pattern=safe_text_pattern(visible=min_length > 0),
        description=description,
    )
