"""A keep-alive HTTP/1.1 connection for load generators: a few microseconds of Python per
request, where httpx spends a millisecond or more (its pool scans every connection per
request). The load generator runs on the cores it measures, so its cost is the stack's loss.
Enough HTTP for our API (answers with Content-Length), not a general client."""

from __future__ import annotations

import asyncio
import time


class Connection:
    """One keep-alive connection; a request at a time. Idle for longer than `max_idle`
    seconds, it is reopened rather than reused: a server closes idle connections after its
    keep-alive timeout (uvicorn's default is 5 s), and a request sent while the server's
    close is still on its way meets a reset. Clients close first."""

    max_idle = 4.0

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request; its answer's status and body."""
        if self.reader is not None and (
            self.reader.at_eof() or time.monotonic() - self.last_used > self.max_idle
        ):
            self.close()  # closed by the server while idle, or it may be closing it now
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        answer = await self.reader.readexactly(length) if length else b""
        self.last_used = time.monotonic()
        return status, answer

    async def get(self, path: str) -> int:
        status, _ = await self.request("GET", path)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
