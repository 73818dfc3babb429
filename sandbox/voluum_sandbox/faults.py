"""Injected faults: kinds, the seeded fault plan, "fail the next N" orders, fault answers.

The plan holds probabilities per kind, a schedule by request number and a queue.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .responses import ApiError, Response, error_envelope, error_response, json_response

FAULT_KINDS = (
    "500",
    "502_html",
    "503",
    "reset",
    "truncated",
    "invalid_json",
    "burst_429",
    "error_in_200",
    "slow",
)
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


class FaultPlan:
    """Probabilities and deterministic schedules of injected faults (seeded)."""

    def __init__(self, spec: dict[str, Any] | None, seed: int) -> None:
        """Validate a ``faults`` knob value."""
        spec = dict(spec or {})
        self.rng = random.Random(spec.get("seed", seed))
        self.login = bool(spec.get("login", False))
        paths = spec.get("paths")
        self.paths = tuple(paths) if paths else None
        self.burst_length = max(1, int(spec.get("burst_length", 3)))
        self.slow_seconds = float(spec.get("slow_seconds", 2.0))
        self.probabilities: list[tuple[str, float]] = []
        for kind in FAULT_KINDS:
            if kind in spec:
                p = float(spec[kind])
                if not 0 <= p <= 1:
                    raise ValueError(f"fault probability of {kind!r} must be within [0, 1]")
                self.probabilities.append((kind, p))
        if sum(p for _, p in self.probabilities) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        self.schedule: dict[int, str] = {}
        for n, kind in dict(spec.get("schedule", {})).items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            self.schedule[int(n)] = kind
        unknown = set(spec) - {
            *FAULT_KINDS,
            "seed",
            "login",
            "paths",
            "burst_length",
            "slow_seconds",
            "schedule",
        }
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        self.counter = 0
        self.burst_left = 0

    def eligible(self, path: str, is_login: bool) -> bool:
        """Whether the probabilistic/scheduled faults apply to this request."""
        if is_login and not self.login:
            return False
        return self.paths is None or any(path.startswith(p) for p in self.paths)

    def draw(self) -> str | None:
        """Decide the fault of the next eligible request (caller holds the lock)."""
        self.counter += 1
        if self.burst_left > 0:
            self.burst_left -= 1
            return "burst_429"
        kind = self.schedule.get(self.counter)
        if kind is None and self.probabilities:
            r = self.rng.random()
            acc = 0.0
            for k, p in self.probabilities:
                acc += p
                if r < acc:
                    kind = k
                    break
        if kind == "burst_429":
            self.burst_left = self.burst_length - 1
        return kind


@dataclass
class QueuedFault:
    """A "fail the next N requests with X" order."""

    kind: str
    remaining: int
    login: bool
    path: str | None


class Faults:
    """A server's injected faults: the plan, the "fail the next N" orders and their counts."""

    def __init__(self, seed: int) -> None:
        """No fault planned; ``seed`` is the plan's default seed (the dataset's)."""
        self.seed = seed
        self.plan = FaultPlan(None, seed)
        self._lock = threading.Lock()
        self._queue: list[QueuedFault] = []
        self._counts: Counter[str] = Counter()

    def configure(self, spec: dict[str, Any] | None) -> None:
        """Replace the plan (``None`` or ``{}``: no random or scheduled fault)."""
        plan = FaultPlan(spec, self.seed)
        with self._lock:
            self.plan = plan

    def fail_next(self, kind: str, count: int, login: bool, path: str | None) -> None:
        """Answer the next ``count`` matching requests with ``kind``, before any other fault."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._queue.append(QueuedFault(kind, int(count), login, path))

    def counts(self) -> dict[str, int]:
        """Responses affected by each kind since the last :meth:`clear`."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Reset the counts."""
        with self._lock:
            self._counts.clear()

    def pick(self, path: str, is_login: bool) -> str | None:
        """Pop a queued fault or draw one from the plan; counts it."""
        with self._lock:
            kind = None
            for item in self._queue:
                if (is_login and not item.login) or (item.path and not path.startswith(item.path)):
                    continue
                kind = item.kind
                item.remaining -= 1
                if item.remaining <= 0:
                    self._queue.remove(item)
                break
            if kind is None and self.plan.eligible(path, is_login):
                kind = self.plan.draw()
            if kind is not None:
                self._counts[kind] += 1
            return kind

    def respond(
        self, kind: str, real: Callable[[], Response], too_many: Callable[[], Response]
    ) -> Response:
        """The answer of fault ``kind``: ``real`` computes the genuine answer, ``too_many`` the
        rate limit's 429 (``burst_429``).
        """  # noqa: D205
        simple: dict[str, Callable[[], Response]] = {
            "500": lambda: error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            "502_html": lambda: Response(502, HTML_502, content_type="text/html"),
            "503": lambda: error_response(503, "SERVICE_UNAVAILABLE", "Service unavailable"),
            "reset": lambda: Response(0, action="reset"),
            "burst_429": too_many,
            "error_in_200": lambda: json_response(
                200, error_envelope("INTERNAL_SERVER_ERROR", "Unexpected error")
            ),
        }
        if kind in simple:
            resp = simple[kind]()
            resp.fault = kind
            return resp
        if kind == "slow":
            time.sleep(self.plan.slow_seconds)
        try:
            resp = real()
        except ApiError as exc:  # a genuine error wins over a body-level fault: not counted
            with self._lock:
                self._counts[kind] -= 1
                if self._counts[kind] <= 0:
                    del self._counts[kind]
            return error_response(exc.status, exc.code, exc.description, exc.messages)
        if resp.status == 200 and kind == "truncated":
            resp.action = "truncate"
        elif resp.status == 200 and kind == "invalid_json":
            resp.body = (resp.body or b"{}")[: max(1, len(resp.body) // 2)]
        resp.fault = kind
        return resp
