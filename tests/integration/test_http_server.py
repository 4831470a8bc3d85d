"""The API as `eventmart api` serves it (uvicorn, httptools), over real sockets: what an
in-process client cannot show. A 20 MB body is refused before it is sent; oversized
request heads are refused before they reach the application."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest


def exchange(url: str, head: bytes, timeout: float = 10.0) -> tuple[Any, dict[str, Any], bool]:
    """Send a raw request head (and no body) and read the answer; whether the server then
    closed the connection."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        body = json.loads(answer.read())
        try:
            closed = sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            closed = True
        return answer, body, closed


def request_head(target: str = "/healthz", method: str = "GET", *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: eventmart.test", *headers, "", ""]
    return "\r\n".join(lines).encode()


def test_a_20_mb_body_is_refused_before_it_is_sent(api_server: str):
    started = time.monotonic()
    head = request_head(
        "/v1/products",
        "POST",
        "Content-Type: application/json",
        f"Content-Length: {20 * 1024 * 1024}",
        "Authorization: Bearer whatever",
    )
    answer, body, closed = exchange(api_server, head)
    assert answer.status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert closed, "the rest of the body is not worth reading: the connection ends"
    assert time.monotonic() - started < 5  # answered without waiting for 20 MB


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ([f"X-Padding: {'a' * 40_000}"], 431, "headers_too_large"),
        ([f"X-Padding-{n}: {'a' * 1000}" for n in range(40)], 431, "headers_too_large"),
        ([f"X-Many-{n}: 1" for n in range(150)], 431, "too_many_headers"),
    ],
)
def test_an_oversized_request_head_is_refused(
    api_server: str, headers: list[str], status: int, code: str
):
    answer, body, closed = exchange(api_server, request_head("/healthz", "GET", *headers))
    assert (answer.status, body["error"]["code"]) == (status, code)
    assert answer.getheader("content-type") == "application/json"
    assert closed


def test_an_oversized_request_target_is_refused(api_server: str):
    answer, body, closed = exchange(api_server, request_head("/healthz?q=" + "a" * 10_000))
    assert (answer.status, body["error"]["code"]) == (414, "uri_too_long")
    assert closed


def test_ordinary_requests_still_pass_and_keep_their_connection(api_server: str):
    address = urlsplit(api_server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        for _ in range(3):  # the same connection, kept alive
            connection.request("GET", "/healthz", headers={"X-Padding": "a" * 8_000})
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read()) == {"status": "ok"}
            assert answer.getheader("x-content-type-options") == "nosniff"
            assert answer.getheader("server") is None
    finally:
        connection.close()
