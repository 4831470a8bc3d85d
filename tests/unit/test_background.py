"""Background work gives way: a step waits while a saga group lags above the threshold and
goes on once it has caught up, and a pause is bounded. (Against Kafka's real lag:
tests/integration/test_background_yield.py.)"""

from __future__ import annotations

from eventmart.background import LagGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_step_waits_while_a_saga_group_lags_and_goes_on_after():
    clock = Clock()
    lags = [500, 500, 300, 10]

    def lag() -> int:
        clock.now += 1.0  # each ask takes a second of the test's clock
        return lags.pop(0) if len(lags) > 1 else lags[0]

    gate = LagGate(lag, threshold=200, check_seconds=0.0, clock=clock)
    assert gate.wait_for_quiet() == 4.0 and gate.pauses == 1  # four asks, the last one quiet
    assert gate.wait_for_quiet() == 0.0 and gate.pauses == 1  # caught up: no pause


def test_a_pause_is_bounded_and_an_unknown_lag_holds_nothing_up():
    clock = Clock()

    def lag() -> int:
        clock.now += 10.0
        return 10_000

    gate = LagGate(lag, threshold=200, check_seconds=0.0, max_pause_seconds=30, clock=clock)
    assert 30 <= gate.wait_for_quiet() <= 40

    def away() -> int:
        raise ConnectionError("no broker")

    assert LagGate(away, threshold=0).wait_for_quiet() == 0.0
