"""Rate limit: at most ``rate_limit`` requests per budget in any sliding 1-second window.

A budget is a token (``rate_limit_scope="token"``, the default) or a client address
(``"address"``: every token, of every account, from one address shares one budget).

Over it: 429 ``NUMBER_OF_REQUEST_FOR_IP_EXCEEDED`` (with ``Retry-After`` when configured).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .responses import Response, error_response


class RateLimiter:
    """Part of :class:`~voluum_sandbox.server.SandboxServer`: the per-token sliding window."""

    rate_limit: int | None
    rate_limit_scope: str
    retry_after: int | None
    _lock: threading.Lock
    _windows: dict[str, deque[float]]

    def _rate_limited(self, token: str, client: str | None = None) -> tuple[Response | None, float]:
        """Sliding 1-second window per budget: a 429 envelope when over ``rate_limit``.

        Also returns the admission time (taken under the lock, so times are ordered).
        """
        with self._lock:
            now = time.monotonic()
            limit = self.rate_limit
            if limit is None:
                return None, now
            key = token if self.rate_limit_scope == "token" else f"address:{client}"
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return self._too_many(), now
            window.append(now)
        return None, now

    def _too_many(self, fault: str | None = None) -> Response:
        """Build a 429 ``NUMBER_OF_REQUEST_FOR_IP_EXCEEDED`` response."""
        resp = error_response(
            429, "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED", "Number of requests for IP exceeded"
        )
        if self.retry_after is not None:
            resp.headers.append(("Retry-After", str(self.retry_after)))
        resp.fault = fault
        return resp


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Largest number of instants in any half-open window of ``width`` seconds."""
    times = sorted(times)
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
