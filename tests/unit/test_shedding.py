"""Past its bound on requests in flight the API sheds: 503 `overloaded` with Retry-After at
once, never a queue without end or a dropped connection; health and metrics still answer."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from api.shedding import ShedLoad
from entrypoints.cli import api_options
from eventmart.settings import Settings


def slow_app(release: asyncio.Event, entered: list[str]) -> Starlette:
    async def slow(request: Request) -> PlainTextResponse:
        entered.append(request.url.path)
        await release.wait()
        return PlainTextResponse("done")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/slow", slow), Route("/healthz", health)])
    app.add_middleware(ShedLoad, max_in_flight=2)
    return app


async def test_requests_past_the_bound_get_503_with_retry_after_and_the_rest_are_served():
    release, entered = asyncio.Event(), []
    transport = httpx.ASGITransport(app=slow_app(release, entered))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        served = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        while len(entered) < 2:
            await asyncio.sleep(0.01)

        shed = await client.get("/slow")
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["error"]["code"] == "overloaded"
        assert (await client.get("/healthz")).status_code == 200  # never shed

        release.set()
        assert [answer.status_code for answer in await asyncio.gather(*served)] == [200, 200]
        assert (await client.get("/slow")).status_code == 200  # room again
    assert len(entered) == 3


def test_the_api_keeps_idle_connections_longer_than_clients_do():
    options = api_options(Settings(), host=None, port=None)
    assert options["timeout_keep_alive"] == 75  # uvicorn's own default is 5 s
    assert api_options(Settings(api_keepalive_seconds=30), None, None)["timeout_keep_alive"] == 30
