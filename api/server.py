"""How the API is served: uvicorn's options, and its httptools protocol with head limits.

uvicorn bounds a request's head only with its h11 parser (`h11_max_incomplete_event_size`);
the faster httptools parser it uses here takes any number of header bytes into memory.
`BoundedHttpToolsProtocol` counts them as the parser hands them over and answers before
the request reaches the application: 414 for a request target over `MAX_TARGET_BYTES`,
431 for a head over the configured size (the same option h11 reads) or with more than
`MAX_HEADER_COUNT` headers. The connection is closed after either.
"""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from eventmart.settings import Settings

MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_COUNT = 100
DEFAULT_HEAD_BYTES = 32 * 1024


class HeadTooLarge(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = self.config.h11_max_incomplete_event_size or DEFAULT_HEAD_BYTES
        self.head_bytes = 0
        self.refused: HeadTooLarge | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.head_bytes += len(url)
        if len(self.url) + len(url) > MAX_TARGET_BYTES:
            self._refuse(
                414, "uri_too_long", f"the request target is over {MAX_TARGET_BYTES} bytes"
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.max_head_bytes:
            self._refuse(
                431, "headers_too_large", f"the request head is over {self.max_head_bytes} bytes"
            )
        if len(self.headers) >= MAX_HEADER_COUNT:
            self._refuse(
                431, "too_many_headers", f"a request may carry at most {MAX_HEADER_COUNT} headers"
            )
        super().on_header(name, value)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Raising from a callback makes the parser fail, and uvicorn then calls
        `send_400_response`, which answers with this refusal instead."""
        self.refused = HeadTooLarge(status, code, message)
        raise self.refused

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when the parser fails; a refusal is answered with its own
        status, in the API's error shape."""
        refusal = self.refused
        if refusal is None:
            super().send_400_response(msg)
            return
        body = orjson.dumps({"error": {"code": refusal.code, "message": refusal.message}})
        head = [
            STATUS_LINE[refusal.status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `eventmart api` passes to uvicorn besides the app, host and port."""
    return {
        "http": f"{BoundedHttpToolsProtocol.__module__}:{BoundedHttpToolsProtocol.__name__}",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,  # no need to tell scanners what serves the API
    }
