"""Users and auth end to end: HTTP -> event store -> relay -> users.events -> Faust
projection -> read model -> HTTP, on the real broker and database."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
from fastapi.testclient import TestClient

from eventmart.sealing import open_envelope
from eventmart.settings import Settings
from eventmart.wiring import field_cipher
from tests.support import read_envelopes, wait_until


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def register(api: TestClient, email: str, password: str = "correct horse", **extra: str):
    return api.post(
        "/v1/users",
        json={"email": email, "password": password, "display_name": "Test User", **extra},
    )


def login(api: TestClient, email: str, password: str = "correct horse") -> str:
    answer = api.post("/v1/auth/token", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    return body["access_token"]


def test_registered_user_travels_through_kafka_to_the_read_model(
    api: TestClient, settings: Settings
):
    email = new_email()
    answer = register(api, email, role="seller")
    assert answer.status_code == 201, answer.text
    user_id = answer.json()["user_id"]

    published = wait_until(
        lambda: [
            e
            for e in read_envelopes(settings.bootstrap_servers, "users.events")
            if str(e.aggregate_id) == user_id
        ],
        timeout=30,
        message="user.registered on users.events",
    )
    event = published[0]
    assert event.type == "user.registered"
    assert event.schema_version == 2 and event.aggregate_version == 1
    # E-mail and name travel sealed under the user's key (eventmart.sealing).
    assert event.payload["email"]["enc"] == event.payload["display_name"]["enc"] == "v1"
    assert email not in str(event.payload)
    assert open_envelope(event, field_cipher(settings)).payload == {
        "user_id": user_id,
        "email": email,
        "display_name": "Test User",
        "role": "seller",
    }
    assert "password" not in str(event.payload)

    token = login(api, email)
    me = wait_until(
        lambda: (
            (r := api.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})).status_code
            == 200
            and r
        ),
        timeout=30,
        message="the users read model to have the user",
    )
    body = me.json()
    assert body["user_id"] == user_id
    assert body["email"] == email
    assert body["role"] == "seller"
    assert body["display_name"] == "Test User"
    assert body["created_at"]


def test_me_before_the_read_model_catches_up_says_retry_after(api: TestClient, settings: Settings):
    email = new_email()
    user_id = register(api, email).json()["user_id"]
    token = login(api, email)
    headers = {"Authorization": f"Bearer {token}"}
    wait_until(
        lambda: api.get("/v1/users/me", headers=headers).status_code == 200,
        message="the user in the read model",
    )
    with psycopg.connect(settings.dsn, autocommit=True) as conn:  # as if it lagged behind
        conn.execute("DELETE FROM users_view WHERE user_id = %s", (user_id,))
    answer = api.get("/v1/users/me", headers=headers)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "not_yet_visible"


def test_duplicate_email_is_409_and_case_insensitive(api: TestClient):
    email = new_email()
    assert register(api, email).status_code == 201
    again = register(api, email.upper())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"


def test_racing_registrations_of_one_email_create_one_user(api: TestClient, settings: Settings):
    email = new_email()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: register(api, email), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 7, statuses


def test_wrong_password_and_unknown_email_get_the_same_401(api: TestClient):
    email = new_email()
    assert register(api, email).status_code == 201
    wrong = api.post("/v1/auth/token", json={"email": email, "password": "not the password"})
    unknown = api.post(
        "/v1/auth/token", json={"email": new_email(), "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"error": {"code": "invalid_credentials", "message": "e-mail or password is wrong"}}
    )


def test_password_over_72_bytes_is_422_not_500(api: TestClient):
    answer = register(api, new_email(), password="é" * 36 + "x")  # 73 bytes in UTF-8
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "72 bytes" in answer.json()["error"]["message"]
    assert register(api, new_email(), password="short").status_code == 422


def test_bad_input_is_422_and_stores_nothing(api: TestClient):
    email = new_email()
    assert register(api, email, role="admin").status_code == 422
    assert (
        api.post(
            "/v1/users",
            json={"email": "not-an-email", "password": "long enough", "display_name": "X"},
        ).status_code
        == 422
    )
    assert (
        api.post(
            "/v1/users",
            json={"email": email, "password": "long enough", "display_name": "X", "unexpected": 1},
        ).status_code
        == 422
    )
    assert register(api, email).status_code == 201  # nothing of the refused attempts was stored


def test_no_token_or_a_forged_token_is_401(api: TestClient):
    assert api.get("/v1/users/me").status_code == 401
    assert api.get("/v1/users/me").json()["error"]["code"] == "not_authenticated"
    forged = api.get("/v1/users/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_token"


def test_expired_token_is_401(api: TestClient, settings: Settings):
    from api.security import TokenIssuer

    expired = TokenIssuer(settings.secret_key, -10).issue(uuid.uuid4(), "customer")
    answer = api.get("/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401


def test_same_idempotency_key_registers_once(api: TestClient):
    email = new_email()
    body = {"email": email, "password": "correct horse", "display_name": "Idem"}
    first = api.post("/v1/users", json=body, headers={"Idempotency-Key": f"k-{email}"})
    second = api.post("/v1/users", json=body, headers={"Idempotency-Key": f"k-{email}"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    changed = api.post(
        "/v1/users",
        json={**body, "display_name": "Other"},
        headers={"Idempotency-Key": f"k-{email}"},
    )
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"


def test_health_and_readiness(api: TestClient):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = wait_until(
        lambda: (answer := api.get("/readyz")).status_code == 200 and answer,
        message="a ready platform (the relay beating)",
    )
    assert ready.json()["checks"] == {"database": "ok", "kafka": "ok", "relay": "ok"}
    relay = ready.json()["relay"]
    assert relay["alive"] is True and relay["heartbeat_age_seconds"] < 5
    assert {o["application"] for o in relay["outboxes"]} >= {"Users", "Catalog", "Orders"}
