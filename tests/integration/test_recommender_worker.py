"""The recommender worker retrains after N new interactions, stores the version and says
so on `recommender.events`; the API serves the new version without a restart, and no
request fails while it switches."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from tests.shop import Customer, Seller
from tests.support import (
    WorkerProcess,
    child_env,
    read_envelopes,
    wait_for_groups_to_join,
    wait_until,
)

EVERY = 12  # interactions between trainings


@pytest.fixture(scope="module")
def recommender(
    settings: Settings, worker_logs: Path, relay: WorkerProcess
) -> Iterator[WorkerProcess]:
    env = child_env(settings.model_copy(update={"recommender_retrain_interactions": EVERY}))
    worker = WorkerProcess("recommender", ["worker", "recommender"], env, worker_logs).start()
    wait_for_groups_to_join(settings.bootstrap_servers, ["recommender"])
    yield worker
    worker.stop()


def announced(settings: Settings) -> list[str]:
    return [
        str(e.payload["version"])
        for e in read_envelopes(settings.bootstrap_servers, "recommender.events")
        if e.type == "recommender.model_trained"
    ]


def served(api: TestClient) -> str | None:
    model = api.get("/v1/recommendations/popular").json()["model"]
    return model["version"] if model else None


class Asking(threading.Thread):
    """A user asking for recommendations all along, noting each answer's model version."""

    def __init__(self, customer: Customer) -> None:
        super().__init__(daemon=True)
        self.customer = customer
        self.stopping = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.versions: list[str | None] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            answer = self.customer.get("/v1/users/me/recommendations", limit=5)
            self.statuses[answer.status_code] += 1
            if answer.status_code == 200:
                model = answer.json()["model"]
                self.versions.append(model["version"] if model else None)


def test_the_worker_retrains_after_n_interactions_and_the_api_switches_without_a_failure(
    api: TestClient,
    settings: Settings,
    recommender: WorkerProcess,
    catalog_projection: WorkerProcess,
):
    seller = Seller(api)
    products = [seller.product(name=f"Lamp {n}", category="lighting", stock=5) for n in range(4)]
    viewer = Customer(api)
    for n in range(EVERY):
        assert viewer.post("/v1/events/view", {"product_id": products[n % 2]}).status_code == 202
    # N views counted (and whatever the log held before): a first version, announced.
    first = wait_until(
        lambda: (versions := announced(settings)) and served(api) == versions[-1] and versions[-1],
        timeout=60,
        message="a first model trained by the worker and served",
    )
    asking = Asking(viewer)
    asking.start()
    try:
        for n in range(EVERY):
            product_id = products[n % len(products)]
            assert viewer.post("/v1/events/view", {"product_id": product_id}).status_code == 202
        second = wait_until(
            lambda: (
                (versions := announced(settings))[-1] != first
                and served(api) == versions[-1]
                and versions[-1]
            ),
            timeout=60,
            message="a model retrained after the new views, and served",
        )
        wait_until(lambda: second in asking.versions, message="an answer from the new model")
    finally:
        asking.stopping.set()
        asking.join(timeout=10)
    assert set(asking.statuses) == {200}, asking.statuses
    assert first in asking.versions or asking.versions[0] == second
    assert recommender.running, recommender.log_tail()
