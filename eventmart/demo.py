"""Demo data for `eventmart up`: a few users, created through the HTTP API like any client."""

from __future__ import annotations

import httpx
from rich.console import Console

from eventmart.settings import Settings

console = Console(stderr=True)

DEMO_USERS = [
    {"email": "seller@eventmart.demo", "password": "demo-password", "display_name": "Demo Seller", "role": "seller"},
    {"email": "alice@eventmart.demo", "password": "demo-password", "display_name": "Alice", "role": "customer"},
    {"email": "bob@eventmart.demo", "password": "demo-password", "display_name": "Bob", "role": "customer"},
]


def seed(settings: Settings, base_url: str) -> None:
    """Idempotent: each user is registered with an Idempotency-Key, so a restart re-seeds nothing."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for user in DEMO_USERS:
            answer = client.post("/v1/users", json=user, headers={"Idempotency-Key": f"demo:{user['email']}"})
            if answer.status_code not in (201, 409):
                console.print(f"[red]seeding {user['email']} failed: {answer.status_code} {answer.text}[/]")
    console.print(
        "[green]Demo users:[/] seller@eventmart.demo, alice@eventmart.demo, bob@eventmart.demo "
        "(password: demo-password). Try:\n"
        f"  curl -s -X POST {base_url}/v1/auth/token -H 'content-type: application/json' "
        "-d '{\"email\":\"alice@eventmart.demo\",\"password\":\"demo-password\"}'\n"
        f"  curl -s {base_url}/v1/users/me -H 'Authorization: Bearer <access_token>'"
    )
