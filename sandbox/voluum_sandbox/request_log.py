"""Request log: what the server answered, the fault counters, and statistics from them.

Each entry: admission time, method, path, query, status, token hash, account index, client
address, fault, duration.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from .limits import max_in_window

if TYPE_CHECKING:
    from .accounts import Account


class RequestLog:
    """Part of :class:`~voluum_sandbox.server.SandboxServer`: the log and its statistics."""

    accounts: list[Account]
    _lock: threading.Lock
    _log_lock: threading.Lock
    _log: list[dict[str, Any]]
    _fault_counts: Counter[str]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of the request log (dicts: t, method, path, query, status, token, account,
        client, fault, duration).
        """  # noqa: D205
        with self._log_lock:
            return [dict(e) for e in self._log]

    def clear_requests(self) -> None:
        """Empty the request log and the fault counters."""
        with self._log_lock:
            self._log.clear()
        with self._lock:
            self._fault_counts.clear()

    @property
    def fault_counts(self) -> dict[str, int]:
        """Number of responses affected by each fault kind since the last clear."""
        with self._lock:
            return dict(self._fault_counts)

    def stats(self) -> dict[str, Any]:
        """Return counts by status, faults injected and max requests per token in any 1-s window.

        Also per account (index: requests served, busiest second) and over every token
        together (``max_per_second_all``: the busiest second across accounts).
        """
        log = self.requests
        by_status = Counter(str(e["status"]) for e in log)
        per_token: dict[str, list[float]] = {}
        accepted: dict[str, list[float]] = {}
        per_account: dict[int, list[float]] = {}
        for e in log:
            if e["token"] is not None:
                per_token.setdefault(e["token"], []).append(e["t"])
                if e["status"] != 429:
                    accepted.setdefault(e["token"], []).append(e["t"])
            if e.get("account") is not None:
                per_account.setdefault(e["account"], []).append(e["t"])
        every = [t for ts in per_token.values() for t in ts]
        every_accepted = [t for ts in accepted.values() for t in ts]
        return {
            "requests": len(log),
            "by_status": dict(sorted(by_status.items())),
            "max_per_second": {t: max_in_window(ts) for t, ts in per_token.items()},
            "max_accepted_per_second": {t: max_in_window(ts) for t, ts in accepted.items()},
            "by_account": {a: len(ts) for a, ts in sorted(per_account.items())},
            "max_per_second_by_account": {
                a: max_in_window(ts) for a, ts in sorted(per_account.items())
            },
            "max_per_second_all": max_in_window(every),
            "max_accepted_per_second_all": max_in_window(every_accepted),
        }
