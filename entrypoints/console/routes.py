"""The console's pages, their live streams (server-sent events) and the operator's actions.

Every page and stream needs an admin's session (session.CurrentOperator), every action the
session's CSRF token too (session.ActingOperator). Pages render their panel once, then the
page's script swaps in the panel each stream event carries, so a page works before its
stream has said anything. Actions answer a fragment htmx puts in place of the button's
result area; each is confirmed in the browser first (hx-confirm) and recorded (actions.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Services, ServicesDep
from api.errors import ApiError
from api.routes.ops import OrderTrace
from api.routes.orders import OrderView, with_money
from api.routes.users import Credentials, authenticate
from domain.order import OrderNotFound
from entrypoints.console import panels
from entrypoints.console.actions import OperatorActions
from entrypoints.console.session import (
    COOKIE,
    ActingOperator,
    CurrentOperator,
    Operator,
    cookie_options,
    session_issuer,
)
from entrypoints.console.waterfall import waterfall
from eventmart.broker import consumer_groups
from eventmart.operations import dead_letter, redrive_dead_letters
from eventmart.relay_operations import RELAY_GROUP, request_redrive, request_skip
from eventmart.relay_operations import dead_letter as relay_dead_letter
from projections.order_trace import order_trace as rebuild_order_trace
from projections.orders import get_order

log = logging.getLogger("eventmart.console")
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# Scripts and styles from this origin only (no inline script or style, no eval); the live
# streams and htmx's requests go back to it; nothing may frame the console.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}
LIVE_SECONDS = 2.0  # how often a live panel is read again and pushed
LIVE_STREAM_SECONDS = 300  # a stream ends then; EventSource reconnects (and is checked again)
GROUP = r"^[a-z0-9][a-z0-9-]{0,99}$"
APPLICATION = r"^[A-Za-z][A-Za-z0-9_]{0,99}$"
GroupPath = Annotated[str, PathParam(pattern=GROUP)]
ApplicationPath = Annotated[str, PathParam(pattern=APPLICATION)]
Position = Annotated[int, PathParam(ge=0, le=2**63 - 1)]
Partition = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(prefix="/console", include_in_schema=False)


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    if "live_url" in context:  # a live page: its panel is rendered alone by its stream too
        context["panel_template"] = f"panels/{name}"
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def fragment(name: str, **context: Any) -> str:
    return templates.get_template(name).render(**context)


def operator_actions(request: Request, services: Services) -> OperatorActions:
    found: OperatorActions | None = getattr(request.app.state, "console_actions", None)
    if found is None:
        found = request.app.state.console_actions = OperatorActions(services.pool)
    return found


def operator_email(services: Services, operator: Operator) -> str:
    email = services.applications.users.get_user(operator.user_id).email
    return str(services.cipher.open(email))  # sealed in the store (eventmart.sealing)


# --- signing in and out ---------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html")


@router.post("/login")
def login(body: Credentials, request: Request, services: ServicesDep) -> Response:
    """Any account may sign in; only an admin's session is shown anything."""
    try:
        user = authenticate(services, body.email, body.password, request)
    except ApiError as refused:
        headers = {**PAGE_HEADERS, **(refused.headers or {})}
        body_html = fragment("login_error.html", message=refused.message)
        return HTMLResponse(body_html, status_code=refused.status, headers=headers)
    response = Response(status_code=204, headers={**PAGE_HEADERS, "HX-Redirect": "/console"})
    session = session_issuer(services.settings).issue(user.id, user.role)
    response.set_cookie(value=session, **cookie_options(request, services.settings))  # type: ignore[arg-type]
    return response


@router.post("/logout")
def logout(_: ActingOperator, request: Request, services: ServicesDep) -> Response:
    response = Response(status_code=204, headers={**PAGE_HEADERS, "HX-Redirect": "/console/login"})
    options = cookie_options(request, services.settings)
    response.delete_cookie(
        COOKIE, path="/console", secure=bool(options["secure"]), httponly=True, samesite="strict"
    )
    return response


@router.get("")
async def home(_: CurrentOperator) -> RedirectResponse:
    return RedirectResponse("/console/groups", status_code=303, headers=PAGE_HEADERS)


# --- live streams -----------------------------------------------------------------------

Produce = Callable[[], Awaitable[list[tuple[str, str]]]]


def server_sent(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


def live(request: Request, produce: Produce) -> StreamingResponse:
    """Push the panel every LIVE_SECONDS until the visitor leaves or LIVE_STREAM_SECONDS pass
    (the browser then reconnects, and the session is checked again)."""

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + LIVE_STREAM_SECONDS
        yield "retry: 2000\n\n"
        while loop.time() < ends_at and not await request.is_disconnected():
            try:
                parts = await produce()
            except Exception as error:  # noqa: BLE001 - a panel says what it could not read
                log.warning("a console panel could not be read: %s", error)
                parts = [("panel", fragment("unavailable.html", error=str(error)))]
            for name, data in parts:
                yield server_sent(name, data)
            await asyncio.sleep(LIVE_SECONDS)  # the panel's refresh period, not a wait on state

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={**PAGE_HEADERS, "X-Accel-Buffering": "no"},
    )


Read = Callable[[Request, Services], Awaitable[dict[str, Any]]]


def live_page(
    path: str, read: Read, extra: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None
) -> None:
    """A page at /console/<path> showing what `read` finds, and its stream at
    /console/live/<path> pushing the page's panel (and any `extra` events) again and again."""
    template = path.replace("-", "_") + ".html"

    async def show(
        request: Request, operator: CurrentOperator, services: ServicesDep
    ) -> HTMLResponse:
        data = await read(request, services)
        live_url = f"/console/live/{path}"
        return page(request, template, operator=operator, section=path, live_url=live_url, **data)

    async def stream(
        request: Request, _: CurrentOperator, services: ServicesDep
    ) -> StreamingResponse:
        async def produce() -> list[tuple[str, str]]:
            data = await read(request, services)
            return [
                ("panel", fragment(f"panels/{template}", **data)),
                *(extra(data) if extra else []),
            ]

        return live(request, produce)

    router.add_api_route(f"/{path}", show, methods=["GET"], name=f"console {path}")
    router.add_api_route(f"/live/{path}", stream, methods=["GET"], name=f"console {path} stream")


# --- consumer groups --------------------------------------------------------------------


def _lag_point(data: dict[str, Any]) -> str:
    return json.dumps(
        {
            "at": datetime.now(UTC).timestamp(),
            "total": data["total_lag"],
            "lag": {group["group"]: group["lag"] for group in data["groups"]},
        }
    )


async def _groups(_: Request, services: Services) -> dict[str, Any]:
    return {**await panels.consumer_groups_panel(services), "names": list(consumer_groups())}


live_page("groups", _groups, extra=lambda data: [("lag", _lag_point(data))])


# --- dead letters -----------------------------------------------------------------------


async def _dead_letters(request: Request, services: Services) -> dict[str, Any]:
    summaries = await panels.dead_letters_panel(services)
    actions = await run_in_threadpool(operator_actions(request, services).recent)
    return {"summaries": summaries, "actions": actions}


live_page("dead-letters", _dead_letters)


def dead_letter_shown(
    request: Request, operator: Operator, group: str, found: dict[str, Any] | None
) -> HTMLResponse:
    status = 200 if found else 404
    return page(
        request,
        "dead_letter.html",
        status=status,
        operator=operator,
        section="dead-letters",
        group=group,
        message=found,
    )


@router.get("/dead-letters/relay/{application}/{notification_id}")
def relay_dead_letter_page(
    request: Request,
    operator: CurrentOperator,
    services: ServicesDep,
    application: ApplicationPath,
    notification_id: Position,
) -> HTMLResponse:
    with services.pool.connection() as conn:
        found = relay_dead_letter(conn, application, notification_id)
    return dead_letter_shown(request, operator, RELAY_GROUP, found)


@router.get("/dead-letters/{group}/{offset}")
async def dead_letter_page(
    request: Request,
    operator: CurrentOperator,
    services: ServicesDep,
    group: GroupPath,
    offset: Position,
    partition: Partition = 0,
) -> HTMLResponse:
    found = None
    if group in consumer_groups():
        found = await dead_letter(
            services.settings.bootstrap_servers, services.settings.dsn, group, offset, partition
        )
    return dead_letter_shown(request, operator, group, found)


def _done(
    request: Request,
    services: Services,
    operator: Operator,
    action: str,
    target: str,
    outcome: str,
) -> HTMLResponse:
    operator_actions(request, services).record(
        operator.user_id, operator_email(services, operator), action, target, outcome
    )
    return HTMLResponse(
        fragment("action_done.html", action=action, target=target, outcome=outcome),
        headers=PAGE_HEADERS,
    )


@router.post("/dead-letters/{group}/redrive")
async def redrive(
    request: Request, operator: ActingOperator, services: ServicesDep, group: GroupPath
) -> HTMLResponse:
    if group not in consumer_groups():
        return HTMLResponse("no such consumer group", status_code=404, headers=PAGE_HEADERS)
    count = await redrive_dead_letters(
        services.settings.bootstrap_servers, services.settings.dsn, group
    )
    return await run_in_threadpool(
        _done, request, services, operator, "redrive", group, f"{count} re-published"
    )


class RelayParked(BaseModel):
    model_config = ConfigDict(extra="forbid")

    application: Annotated[str, Field(pattern=APPLICATION)]
    notification_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


RELAY_ACTIONS = {
    "redrive": (request_redrive, "relay redrive", "{} asked for"),
    "skip": (request_skip, "relay skip", "{} skipped"),
}


@router.post("/relay/{action}")
def relay_action(
    action: Annotated[str, PathParam(pattern="^(redrive|skip)$")],
    body: RelayParked,
    request: Request,
    operator: ActingOperator,
    services: ServicesDep,
) -> HTMLResponse:
    """Ask the relay to publish one parked event again (after a fix) or to give up on it."""
    ask, name, outcome = RELAY_ACTIONS[action]
    with services.pool.connection() as conn:
        count = ask(conn, body.application, body.notification_id)
    target = f"{body.application} #{body.notification_id}"
    return _done(request, services, operator, name, target, outcome.format(count))


# --- sagas and orders -------------------------------------------------------------------


async def _sagas(_: Request, services: Services) -> dict[str, Any]:
    return {"stuck": await run_in_threadpool(panels.sagas_panel, services)}


live_page("sagas", _sagas)


@router.get("/orders")
async def find_order(_: CurrentOperator, order_id: Annotated[UUID, Query()]) -> RedirectResponse:
    return RedirectResponse(f"/console/orders/{order_id}", status_code=303, headers=PAGE_HEADERS)


def read_order(services: Services, order_id: UUID) -> dict[str, Any]:
    """The order and its trace as GET /v1/orders/{id} and GET /v1/ops/orders/{id}/trace
    answer them: the same query functions (projections.orders, projections.order_trace) on
    the orders read model's pool, shaped by the routes' own models."""
    with services.read_pool("orders-projection").connection() as conn:
        found = get_order(conn, str(order_id))
        trace = rebuild_order_trace(conn, str(order_id))
    order = OrderView(**with_money(found)).model_dump(mode="json") if found else None
    order_status = 200 if order else 404
    if order is None:
        try:  # placed, but the read model has not caught up: the route's 503
            services.applications.orders.get_order(order_id)
            order_status = 503
        except OrderNotFound:
            pass
    return {
        "order_id": order_id,
        "order_status": order_status,
        "order": order,
        "trace_status": 200 if trace is not None else 404,
        "trace": waterfall(OrderTrace(**trace).model_dump(mode="json")) if trace else None,
        "jaeger_url": services.settings.jaeger_url,
    }


@router.get("/orders/{order_id}")
async def order_page(
    request: Request, operator: CurrentOperator, services: ServicesDep, order_id: UUID
) -> HTMLResponse:
    data = await run_in_threadpool(read_order, services, order_id)
    return page(
        request,
        "order.html",
        operator=operator,
        section="sagas",
        live_url=f"/console/live/orders/{order_id}",
        **data,
    )


@router.get("/live/orders/{order_id}")
async def order_live(
    request: Request, _: CurrentOperator, services: ServicesDep, order_id: UUID
) -> StreamingResponse:
    async def produce() -> list[tuple[str, str]]:
        data = await run_in_threadpool(read_order, services, order_id)
        return [("panel", fragment("panels/order.html", **data))]

    return live(request, produce)


# --- relay, read models, models ---------------------------------------------------------


async def _relay(_: Request, services: Services) -> dict[str, Any]:
    return await run_in_threadpool(panels.relay_panel, services)


async def _read_models(_: Request, services: Services) -> dict[str, Any]:
    return {"models": await panels.read_models_panel(services)}


live_page("relay", _relay)
live_page("read-models", _read_models)


@router.get("/models")
def models_page(request: Request, operator: CurrentOperator, services: ServicesDep) -> HTMLResponse:
    return page(
        request, "models.html", operator=operator, section="models", **panels.models_panel(services)
    )


@cache
def classifier_figures() -> dict[str, Any]:
    """The classifier's held-out report (eventmart.ml.feedback.report, as `analyst
    train-classifier` prints it), computed once per process: seconds of CPU."""
    from eventmart.ml.feedback.report import held_out_report

    report = held_out_report(with_toolkits=False)
    return {
        "train_count": report.train_count,
        "held_out_count": report.held_out_count,
        "figures": {name: figures["overall"] for name, figures in report.figures.items()},
    }


@router.get("/models/classifier-figures")
def classifier_figures_fragment(_: CurrentOperator) -> HTMLResponse:
    return HTMLResponse(
        fragment("panels/classifier_figures.html", **classifier_figures()), headers=PAGE_HEADERS
    )
