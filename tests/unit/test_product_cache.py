"""The product cache's bookkeeping: what it keeps, what it refuses, when it forgets
(its notifications over real PostgreSQL are in tests/integration/test_product_cache.py)."""

from __future__ import annotations

import time

import pytest

from api.product_cache import ProductCache

A, B = "0b6c1e8e-0000-4000-8000-00000000000a", "0b6c1e8e-0000-4000-8000-00000000000b"


@pytest.fixture()
def cache() -> ProductCache:
    listening = ProductCache("postgresql://unused", max_entries=3, max_age=30.0)
    listening.listening.set()
    return listening


def test_keeps_what_was_read_when_nothing_changed_meanwhile(cache: ProductCache):
    ticket = cache.ticket()
    cache.put(A, b"a", ticket)
    assert cache.get(A) == b"a"


def test_refuses_a_read_its_product_changed_during(cache: ProductCache):
    ticket = cache.ticket()
    cache.changed(A)  # heard after the query began, before its answer is stored
    cache.put(A, b"old a", ticket)
    cache.put(B, b"b", ticket)
    assert cache.get(A) is None
    assert cache.get(B) == b"b"  # another product's change does not matter
    later = cache.ticket()
    cache.put(A, b"new a", later)
    assert cache.get(A) == b"new a"


def test_a_change_drops_the_answer(cache: ProductCache):
    cache.put(A, b"a", cache.ticket())
    cache.changed(A)
    assert cache.get(A) is None


def test_star_drops_everything_and_refuses_reads_begun_before(cache: ProductCache):
    ticket = cache.ticket()
    cache.put(A, b"a", ticket)
    cache.changed("*")
    assert cache.get(A) is None
    cache.put(B, b"b", ticket)
    assert cache.get(B) is None


def test_keeps_nothing_while_not_listening(cache: ProductCache):
    cache.listening.clear()
    cache.put(A, b"a", cache.ticket())
    assert cache.get(A) is None


def test_bounded_oldest_first(cache: ProductCache):
    ids = [f"0b6c1e8e-0000-4000-8000-00000000000{n}" for n in range(4)]
    for n, product_id in enumerate(ids):
        cache.put(product_id, str(n).encode(), cache.ticket())
    assert cache.get(ids[0]) is None
    assert [cache.get(product_id) for product_id in ids[1:]] == [b"1", b"2", b"3"]


def test_too_many_remembered_changes_forget_everything(cache: ProductCache):
    ticket = cache.ticket()
    for n in range(4):  # more than max_entries distinct changes
        cache.changed(f"0b6c1e8e-0000-4000-8000-00000000001{n}")
    cache.put(A, b"a", ticket)  # A's change may have been forgotten: not kept
    assert cache.get(A) is None


def test_answers_expire(cache: ProductCache, monkeypatch: pytest.MonkeyPatch):
    cache.put(A, b"a", cache.ticket())
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 31)
    assert cache.get(A) is None
