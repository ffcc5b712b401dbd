"""What a worker keeps of derived data between requests: least recently used first out,
bounded in bytes, safe across threads. Each kind of entry says its own size (``nbytes``)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import Any

from cachetools import LRUCache


class KeptByBytes:
    """Entries by key, least recently used first out past ``max_bytes``; an entry larger
    than the whole is not kept."""

    def __init__(self, max_bytes: int):
        self._lock = threading.Lock()
        self._cache: LRUCache = LRUCache(max_bytes, getsizeof=lambda value: value.nbytes)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            return self._found(key)

    def get_many(self, keys: Sequence[Hashable]) -> list[Any | None]:
        with self._lock:
            return [self._found(key) for key in keys]

    def _found(self, key: Hashable) -> Any | None:
        # The cache's own get() asks ``key in cache`` and then reads it: two lookups where
        # one does (a session makes about forty, mostly found).
        try:
            return self._cache[key]
        except KeyError:
            return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            if value.nbytes <= self._cache.maxsize:
                self._cache[key] = value

    def __len__(self) -> int:
        return len(self._cache)
