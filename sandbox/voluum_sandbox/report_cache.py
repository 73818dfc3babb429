"""Result cache of the report engine: LRU over normalised queries.

Bounded by entries and rows; concurrent requests for the same key wait for one computation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CacheEntry:
    """A cache slot; concurrent requests for the same key wait for the first computation."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    size: int = 1


class ResultCache:
    """Part of :class:`~voluum_sandbox.reports.ReportEngine`: the memo of computed results."""

    max_entries: int
    max_rows: int
    _lock: threading.Lock
    _cache: OrderedDict[Any, CacheEntry]

    def cached(self, key: Any, compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """Return ``compute()`` memoised under ``key`` (one computation even under concurrency)."""
        with self._lock:
            entry = self._cache.get(key)
            owner = entry is None
            if entry is None:
                entry = CacheEntry()
                self._cache[key] = entry
            else:
                self._cache.move_to_end(key)
        if not owner:
            entry.done.wait()
            if entry.error is not None:
                raise entry.error
            return entry.value
        try:
            entry.value = compute()
            entry.size = max(1, size(entry.value))
        except BaseException as exc:
            entry.error = exc
            with self._lock:
                self._cache.pop(key, None)
            raise
        finally:
            entry.done.set()
        self._evict()
        return entry.value

    def _evict(self) -> None:
        """Drop least recently used results beyond the entry/row budgets."""
        with self._lock:
            total = sum(e.size for e in self._cache.values())
            while len(self._cache) > 1 and (
                len(self._cache) > self.max_entries or total > self.max_rows
            ):
                _, old = self._cache.popitem(last=False)
                total -= old.size

    def clear_cache(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._cache.clear()
