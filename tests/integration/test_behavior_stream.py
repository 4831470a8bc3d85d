"""The behaviour stream through the HTTP API: views land on `behavior.events` once each,
202 only once the broker has them (a broker restart in the middle of a burst loses and
doubles nothing), and bad views are 422 with nothing published."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

from fastapi.testclient import TestClient

from api.view_fast_path import ViewFastPath
from entrypoints.stack import Infrastructure
from eventmart import broker
from eventmart.contracts.behavior import visitor_id
from eventmart.ml.event_log import read_events
from eventmart.settings import Settings
from tests.shop import Customer, Seller
from tests.support import read_envelopes, wait_until


def viewed(settings: Settings) -> list[dict[str, object]]:
    return [
        {"event_id": str(e.event_id), "key": str(e.aggregate_id), **e.payload}
        for e in read_envelopes(settings.bootstrap_servers, "behavior.events")
        if e.type == "behavior.viewed"
    ]


def test_views_of_users_and_sessions_are_on_the_topic_keyed_by_visitor(
    api: TestClient, settings: Settings
):
    seller, customer = Seller(api), Customer(api)
    product_id = seller.product(stock=0)
    session = f"s-{uuid.uuid4().hex}"
    signed_in = customer.post("/v1/events/view", {"product_id": product_id, "source": "search"})
    anonymous = api.post("/v1/events/view", json={"product_id": product_id, "session_id": session})
    assert signed_in.status_code == 202, signed_in.text
    assert anonymous.status_code == 202, anonymous.text
    on_topic = {view["event_id"]: view for view in viewed(settings)}
    mine = on_topic[signed_in.json()["event_id"]]
    assert mine["user_id"] == customer.user_id and mine["source"] == "search"
    assert mine["key"] == customer.user_id and mine["product_id"] == product_id
    theirs = on_topic[anonymous.json()["event_id"]]
    assert theirs["session_id"] == session and theirs["user_id"] is None
    assert theirs["key"] == str(visitor_id(None, session)) and theirs["source"] == "direct"


def test_a_retried_view_with_its_idempotency_key_is_the_same_event(api: TestClient):
    product_id = Seller(api).product(stock=0)
    body = {"product_id": product_id, "session_id": "retry-me"}
    key = {"Idempotency-Key": f"view-{uuid.uuid4().hex}"}
    first = api.post("/v1/events/view", json=body, headers=key)
    again = api.post("/v1/events/view", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    # API.md: the key with another body is refused, not published as the first event.
    other = {**body, "product_id": Seller(api).product(stock=0)}
    reused = api.post("/v1/events/view", json=other, headers=key)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    elsewhere = api.post("/v1/events/view", json={**other, "session_id": "another"}, headers=key)
    assert elsewhere.status_code == 202  # keys are per visitor


def test_bad_views_are_422_and_publish_nothing(api: TestClient, settings: Settings):
    product_id = Seller(api).product(stock=0)
    before = Counter(view["product_id"] for view in viewed(settings))
    unknown = str(uuid.uuid4())
    cases = [
        ({"product_id": unknown, "session_id": "s1"}, "unknown_product"),
        ({"product_id": product_id}, "session_required"),
        ({"product_id": product_id, "session_id": "s1", "source": "telepathy"}, "invalid_input"),
        ({"product_id": product_id, "session_id": "x" * 129}, "invalid_input"),
        ({"product_id": product_id, "session_id": "bad id\n"}, "invalid_input"),
        ({"product_id": product_id, "session_id": "s1", "extra": 1}, "invalid_input"),
        ({"product_id": "not-a-uuid", "session_id": "s1"}, "invalid_input"),
    ]
    for body, code in cases:
        answer = api.post("/v1/events/view", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == code, (body, answer.text)
    bad_token = api.post(
        "/v1/events/view",
        json={"product_id": product_id},
        headers={"Authorization": "Bearer nonsense"},
    )
    assert bad_token.status_code == 401
    after = Counter(view["product_id"] for view in viewed(settings))
    assert after[unknown] == 0 and after[product_id] == before[product_id]


class ViewsInALoop(threading.Thread):
    """A visitor viewing products one after another; a 503 is retried with the same
    Idempotency-Key, as a client honouring Retry-After would."""

    def __init__(self, api: TestClient, product_id: str, name: str) -> None:
        super().__init__(daemon=True)
        self.api, self.product_id, self.name = api, product_id, name
        self.stopping = threading.Event()
        self.accepted: list[str] = []
        self.retried: set[str] = set()
        self.statuses: Counter[int] = Counter()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            key = {"Idempotency-Key": f"{self.name}-{n}"}
            body = {"product_id": self.product_id, "session_id": self.name, "source": "category"}
            while True:
                answer = self.api.post("/v1/events/view", json=body, headers=key)
                self.statuses[answer.status_code] += 1
                if answer.status_code != 503:
                    break
                self.retried.add(key["Idempotency-Key"])
                time.sleep(0.2)
            if answer.status_code == 202:
                self.accepted.append(answer.json()["event_id"])
            n += 1


def test_views_accepted_across_a_broker_restart_are_all_on_the_topic_once(
    api: TestClient, settings: Settings, infrastructure: Infrastructure
):
    product_id = Seller(api).product(stock=0)
    publisher = api.app.state.behavior  # type: ignore[attr-defined]
    usual_timeout, publisher.timeout = publisher.timeout, 3.0  # refusals come sooner
    loops = [ViewsInALoop(api, product_id, f"burst-{uuid.uuid4().hex[:8]}") for _ in range(4)]
    for loop in loops:
        loop.start()
    try:
        wait_until(lambda: sum(len(loop.accepted) for loop in loops) >= 100, timeout=30)
        assert infrastructure.kafka, "the broker is not this session's own"
        for node in infrastructure.kafka:
            node.terminate()
        for node in infrastructure.kafka:
            node.wait(timeout=60)
        infrastructure.kafka = broker.start_embedded(settings)
        during = sum(len(loop.accepted) for loop in loops)
        wait_until(
            lambda: sum(len(loop.accepted) for loop in loops) >= during + 100,
            timeout=60,
            message="views accepted again after the restart",
        )
    finally:
        for loop in loops:
            loop.stopping.set()
        for loop in loops:
            loop.join(timeout=30)
        publisher.timeout = usual_timeout
    statuses = sum((loop.statuses for loop in loops), Counter())
    assert set(statuses) <= {202, 503}, statuses
    accepted = [event_id for loop in loops for event_id in loop.accepted]
    on_topic = Counter(
        view["event_id"] for view in viewed(settings) if view["product_id"] == product_id
    )
    assert len(accepted) == len(set(accepted))
    assert set(on_topic) == set(accepted), (
        "a view accepted is missing, or one never accepted is there"
    )
    # The idempotent producer never doubles a record; only a view whose first try was
    # refused (and may have landed later) can be there twice, with its one event id.
    doubled = {event_id for event_id, count in on_topic.items() if count > 1}
    assert len(doubled) <= sum(len(loop.retried) for loop in loops)
    # ... and the recommender counts an event id once.
    data = read_events(read_envelopes(settings.bootstrap_servers, "behavior.events"))
    views = data.interactions[data.interactions["item_id"] == product_id]
    assert len(views) == len(accepted)


def fast_path(api: TestClient) -> ViewFastPath:
    """The view fast path in front of the routes (api.view_fast_path)."""
    layer = api.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, ViewFastPath):
        layer = layer.app
    return layer


def test_a_view_of_a_known_product_is_answered_before_the_routes_as_the_route_answers(
    api: TestClient, settings: Settings
):
    seller, customer = Seller(api), Customer(api)
    product_id = seller.product(stock=0)
    session = f"s-{uuid.uuid4().hex}"
    fast = fast_path(api)
    first = api.post("/v1/events/view", json={"product_id": product_id, "session_id": session})
    answered = fast.answered  # the product was new to this process: the route answered
    anonymous = api.post("/v1/events/view", json={"product_id": product_id, "session_id": session})
    signed_in = customer.post("/v1/events/view", {"product_id": product_id, "source": "similar"})
    keyed = api.post(
        "/v1/events/view",
        json={"product_id": product_id, "session_id": session},
        headers={"Idempotency-Key": "again-1"},
    )
    assert fast.answered == answered + 3
    for answer in (first, anonymous, signed_in, keyed):
        assert answer.status_code == 202, answer.text
        assert set(answer.json()) == {"event_id"}
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-content-type-options"] == "nosniff"
    on_topic = {view["event_id"]: view for view in viewed(settings)}
    theirs = on_topic[anonymous.json()["event_id"]]
    assert theirs["session_id"] == session and theirs["user_id"] is None
    assert theirs["source"] == "direct" and theirs["product_id"] == product_id
    mine = on_topic[signed_in.json()["event_id"]]
    assert mine["user_id"] == customer.user_id and mine["key"] == customer.user_id
    assert mine["source"] == "similar"
    again = api.post(
        "/v1/events/view",
        json={"product_id": product_id, "session_id": session},
        headers={"Idempotency-Key": "again-1"},
    )
    assert again.json() == keyed.json(), "the same key is the same event"
    answered = fast.answered
    reused = api.post(
        "/v1/events/view",
        json={"product_id": product_id, "session_id": session, "source": "search"},
        headers={"Idempotency-Key": "again-1"},
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert fast.answered == answered, "refused by the route"


def test_a_known_product_s_bad_views_go_on_to_the_route_and_publish_nothing(
    api: TestClient, settings: Settings
):
    product_id = Seller(api).product(stock=0)
    made_known = api.post("/v1/events/view", json={"product_id": product_id, "session_id": "s"})
    assert made_known.status_code == 202
    fast = fast_path(api)
    answered = fast.answered
    before = Counter(view["product_id"] for view in viewed(settings))
    cases = [
        ({"product_id": product_id}, {}, 422, "session_required"),
        ({"product_id": product_id, "session_id": "s1", "source": "x"}, {}, 422, "invalid_input"),
        ({"product_id": product_id, "session_id": "s1", "extra": 1}, {}, 422, "invalid_input"),
        ({"product_id": product_id, "session_id": "s 1"}, {}, 422, "invalid_input"),
        (
            {"product_id": product_id},
            {"Authorization": "Bearer nonsense"},
            401,
            "invalid_token",
        ),
        (
            {"product_id": product_id, "session_id": "s1"},
            {"Idempotency-Key": "x" * 256},
            422,
            "invalid_input",
        ),
    ]
    for body, headers, status, code in cases:
        answer = api.post("/v1/events/view", json=body, headers=headers)
        assert answer.status_code == status, (body, headers, answer.text)
        assert answer.json()["error"]["code"] == code, (body, headers, answer.text)
    not_json = api.post(
        "/v1/events/view", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422, not_json.text
    assert fast.answered == answered, "every one went on to the route"
    after = Counter(view["product_id"] for view in viewed(settings))
    assert after[product_id] == before[product_id]
