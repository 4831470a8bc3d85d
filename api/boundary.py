"""The HTTP boundary every request crosses before any route, as one pure ASGI middleware
(no BaseHTTPMiddleware: a few microseconds per request, the product fast path included).

- Bodies: a declared Content-Length over the limit is refused with 413 before anything
  reads it (and before any authentication work); a chunked body is counted as it streams
  and refused the moment it passes the limit. A body on POST, PUT or PATCH must be JSON
  (415 otherwise).
- Methods: HEAD answers as GET without the body; OPTIONS answers 204 with `Allow` for a
  known path (404 for an unknown one), so does a 405 (see api.errors).
- Headers: every answer carries the security headers below; an answer that says nothing
  about caching is `no-store` (tokens, profiles, orders are private; the catalogue is
  cheap to ask again and must never be served stale by a shared cache).
- Failures: an exception no handler took is logged with its traceback and answered as a
  JSON 500 in the usual error shape, never as the server's plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("eventmart.api")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The one DELETE that takes a body (its password); the other DELETEs ignore any body, as
# before. A unit test keeps this equal to the OpenAPI document's DELETEs with a body.
DELETES_WITH_BODY = frozenset({"/v1/users/me"})
ROUTABLE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DOCUMENTATION_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# A JSON API loads nothing and may be framed by nobody.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# The interactive docs page loads Swagger UI / ReDoc from their CDN with inline setup code.
DOCS_CSP = (
    b"content-security-policy",
    (
        b"default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
        b"style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
        b"font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
        b"https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'"
    ),
)
NO_STORE = (b"cache-control", b"no-store")
# What is added to an answer's headers: (path is a docs page, answer sets Cache-Control,
# answer sets its own Content-Security-Policy: a page that loads its own scripts and
# styles, such as the operations console's, says which; that one header stands alone).
ADDED_HEADERS = {
    (docs, cache_set, csp_set): [*SECURITY_HEADERS]
    + ([] if csp_set else [DOCS_CSP if docs else API_CSP])
    + ([] if cache_set else [NO_STORE])
    for docs in (False, True)
    for cache_set in (False, True)
    for csp_set in (False, True)
}


class PayloadTooLarge(HTTPException):
    """Raised while a streamed body passes the limit. An HTTPException, so FastAPI's body
    reading lets it through to the error handlers rather than calling it a parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the scope's path, HEAD with GET and OPTIONS always;
    empty when no route has the path. Asked method by method, as the router would match
    them (included routers nest their routes, so reading route.methods would miss some)."""
    routes = list(routes)
    methods = [
        method
        for method in ROUTABLE_METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    if not methods:
        return []
    if "GET" in methods:
        methods.insert(1, "HEAD")
    return [*methods, "OPTIONS"]


def body_headers(scope: Scope) -> tuple[int | None, bytes, bool]:
    """The declared body length, the content type and whether the body is chunked."""
    length: int | None = None
    content_type = b""
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"content-type":
            content_type = value
        elif name == b"transfer-encoding":
            chunked = True
    return length, content_type, chunked


def json_messages(status: int, body: bytes) -> tuple[Message, Message]:
    """The two ASGI messages of a JSON answer (its start, its body)."""
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


async def send_json(send: Send, status: int, body: bytes) -> None:
    """Answer with a serialised JSON body, from a middleware in front of the routes."""
    start, rest = json_messages(status, body)
    await send(start)
    await send(rest)


def error_message(status: int, code: str, message: str) -> tuple[Message, Message]:
    return json_messages(status, orjson.dumps({"error": {"code": code, "message": message}}))


class HttpBoundary:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path"]
        head = method == "HEAD"
        if head:
            scope["method"] = "GET"
        docs = path in DOCUMENTATION_PATHS
        started = False

        async def send_guarded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers") or []
                cache_set = csp_set = False
                for name, _ in headers:
                    if name == b"cache-control":
                        cache_set = True
                    elif name == b"content-security-policy":
                        csp_set = True
                added = ADDED_HEADERS[docs, cache_set, csp_set]
                message = {**message, "headers": [*headers, *added]}
            elif head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        length, content_type, chunked = body_headers(scope)
        takes_body = method in BODY_METHODS or (method == "DELETE" and path in DELETES_WITH_BODY)
        refusal = self._refusal(takes_body, length, content_type, chunked)
        if refusal is not None:
            status, code, text = refusal
            await self._answer(send_guarded, status, code, text, close=status == 413)
            return
        if method == "OPTIONS":
            allowed = allowed_methods(scope["app"].router.routes, scope)
            if allowed:
                await send_guarded(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(allowed).encode())],
                    }
                )
                await send_guarded({"type": "http.response.body", "body": b""})
                return
        if chunked:  # a declared length is held to by the server, and was checked above
            receive = self._counting(receive)
        try:
            await self.app(scope, receive, send_guarded)
        except PayloadTooLarge as error:
            if started:
                raise
            await self._answer(send_guarded, 413, "payload_too_large", error.detail, close=True)
        except Exception:
            log.exception("unhandled error answering %s %s", method, path)
            if started:
                raise
            await self._answer(send_guarded, 500, "internal_error", "something went wrong")

    def _refusal(
        self, takes_body: bool, length: int | None, content_type: bytes, chunked: bool
    ) -> tuple[int, str, str] | None:
        """What is wrong with the request line and headers alone, before any body is read."""
        if length is not None and length > self.max_body_bytes:
            return (
                413,
                "payload_too_large",
                f"the request body is larger than {self.max_body_bytes} bytes",
            )
        has_body = chunked or bool(length)
        if has_body and takes_body and not is_json(content_type):
            return 415, "unsupported_media_type", "send the body as application/json"
        return None

    def _counting(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        return receive_counted

    @staticmethod
    async def _answer(send: Send, status: int, code: str, text: str, close: bool = False) -> None:
        start, body = error_message(status, code, text)
        if close:  # the rest of an unread body is not worth reading: end the connection
            start["headers"].append((b"connection", b"close"))
        await send(start)
        await send(body)
