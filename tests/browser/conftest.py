"""The console's tests: an admin account, sessions signed in through the login form, and
headless Debian chromium (/usr/bin/chromium, installed by .ci/install-chromium) driven by
Playwright against a real `eventmart api` process, which serves the console."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventmart.settings import PROJECT_ROOT
from tests.support import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# EVENTMART_CONSOLE_SCREENSHOTS=docs/console makes the browser tests save each page there.
SCREENSHOTS = os.environ.get("EVENTMART_CONSOLE_SCREENSHOTS")


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    user_id: str


def register(api: TestClient, role: str) -> Account:
    """An account of any role (admins cannot register through the API), able to log in."""
    services = api.app.state.services  # type: ignore[attr-defined]
    email, password = f"{role}-{uuid.uuid4().hex[:12]}@example.com", "console password"
    user_id = services.applications.users.register_user(
        email, services.hasher.hash(password), role.title(), role
    )

    def can_log_in() -> bool:
        answer = api.post("/v1/auth/token", json={"email": email, "password": password})
        return answer.status_code == 200

    wait_until(can_log_in, timeout=30, message=f"the {role} to be able to log in")
    return Account(email, password, str(user_id))


@pytest.fixture(scope="session")
def admin_account(api: TestClient) -> Account:
    return register(api, "admin")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless chromium per module, with a fresh profile (never `playwright install`:
    Debian's chromium is the browser). Not per session: Playwright's sync API keeps an
    event loop running in the main thread until it stops, and every later test that
    calls asyncio.run would fail."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        folder = PROJECT_ROOT / SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
