"""The operations console at /console: server-rendered pages (Jinja2 + htmx, uPlot for the
lag chart, both served from static/vendor) for admins, live by server-sent events.

The API (api/) does not know the console: the processes that serve the API compose it here
(`eventmart api` and the test suite call `create_app`). See docs/console.md."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from eventmart.settings import Settings

STATIC = Path(__file__).parent / "static"
LOGIN = "/console/login"


def mount_console(app: FastAPI) -> FastAPI:
    """Add the console's routes, static files and session errors to the API's app."""
    from entrypoints.console.routes import PAGE_HEADERS, fragment, router
    from entrypoints.console.session import CsrfRefused, LoginRequired, NotAnOperator
    from entrypoints.console.users import router as users_router

    app.include_router(router)
    app.include_router(users_router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _: LoginRequired) -> Response:
        # htmx follows HX-Redirect (a live panel's or an action's request); a page, the 303.
        return RedirectResponse(
            LOGIN, status_code=303, headers={**PAGE_HEADERS, "HX-Redirect": LOGIN}
        )

    @app.exception_handler(NotAnOperator)
    async def not_an_operator(request: Request, _: NotAnOperator) -> Response:
        return HTMLResponse(fragment("forbidden.html"), status_code=403, headers=PAGE_HEADERS)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: CsrfRefused) -> Response:
        body = fragment("csrf_refused.html")
        return HTMLResponse(body, status_code=403, headers=PAGE_HEADERS)

    return app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with the console: what `eventmart api` serves (a uvicorn factory too)."""
    from api.main import create_app as create_api

    return mount_console(create_api(settings))
