"""The LRU + TTL metadata cache."""

from __future__ import annotations

import time

from trainforge.checkpoint import TTLCache


def test_lru_evicts_least_recently_used() -> None:
    cache: TTLCache[str, int] = TTLCache(maxsize=2, ttl=60)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3


def test_entries_expire_after_ttl() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=0.05)
    cache.put("a", 1)
    assert cache.get("a") == 1
    time.sleep(0.06)
    assert cache.get("a") is None and len(cache) == 0


def test_invalidate_one_or_all() -> None:
    cache: TTLCache[str, int] = TTLCache()
    cache.put("a", 1)
    cache.put("b", 2)
    cache.invalidate("a")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.invalidate()
    assert len(cache) == 0
