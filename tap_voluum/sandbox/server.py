"""Local Voluum-compatible HTTP server: auth, entities, reports, limits, faults and a request log.

The server runs ``http.server.ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per
connection) in a background daemon thread.  Behaviour knobs can be changed at runtime through
:meth:`SandboxServer.configure` or the admin API under ``/__sandbox__/`` (no auth, no faults,
not logged).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import secrets
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from .data import Dataset, ampm, iso_ms, tz_context
from .dialects import Dialects, parse_day, parse_dialects
from .reports import (
    ApiError,
    ReportEngine,
    first,
    many,
    parse_hour_time,
    parse_paging,
)

UTC = timezone.utc
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
KNOBS = (
    "latency",
    "rate_limit",
    "token_lifetime",
    "faults",
    "workspaces_status",
    "live_status",
    "event_log_status",
    "retry_after",
    "dialects",
    "lose_row_day",
)
# Endpoints that deny sessions created with an access key (Voluum docs).
ACCESS_KEY_DENY_LIST = (
    "PUT /profile/password",
    "POST /auth/access",
    "POST /payment/coupon",
    "POST /profile/emailchange/init",
    "PATCH /setup",
    "POST /payment/coupon/{couponCode}/validate",
    "POST /profile/emailchange/resend",
    "POST /report/manual-cost",
    "DELETE /payment/profile",
    "POST /profile/emailchange/cancel",
    "PUT /zeropark/integration",
    "GET /payment/profile",
    "PUT /profile/client",
    "DELETE /zeropark/integration",
    "PUT /payment/profile",
    "GET /profile/invitation",
    "GET /billing/info",
    "DELETE /payment/profile/clean",
    "POST /profile/invitation",
    "PUT /billing/info",
    "GET /payment/token",
    "DELETE /profile/invitation/{email}",
    "GET /billing/invoice",
    "POST /payment/topup/execute",
    "POST /profile/membership",
    "GET /billing/invoice/{invoiceId}",
    "POST /payment/topup/init",
    "DELETE /profile/membership",
    "GET /billing/notification",
    "GET /plan",
    "DELETE /profile/member/{userId}",
    "GET /billing/plan",
    "GET /referral",
    "POST /profile/mfa/initialize",
    "PUT /billing/plan",
    "POST /feedback",
    "POST /profile/mfa/activate",
    "GET /payment/balance",
    "POST /profile/mfa/deactivate",
    "GET /payment/coupon",
)


def _deny_pattern(entry: str) -> tuple[str, re.Pattern[str]]:
    """Compile ``"METHOD /path/{param}"`` into a method and a path regex."""
    method, path = entry.split(" ", 1)
    regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
    return method, re.compile(f"^{regex}/?$")


_DENY = [_deny_pattern(e) for e in ACCESS_KEY_DENY_LIST]
_ENTITY_PATHS = {
    "campaign": ("campaign", "campaigns"),
    "offer": ("offer", "offers"),
    "lander": ("lander", "landers"),
    "flow": ("flow", "flows"),
    "traffic-source": ("traffic-source", "trafficSources"),
    "affiliate-network": ("affiliate-network", "affiliateNetworks"),
}
TIMEZONES = (
    "Etc/GMT",
    "UTC",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Bogota",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "CET",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Warsaw",
    "Europe/Kiev",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
)
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_JSON = "application/json; charset=utf-8"


def token_hash(token: str) -> str:
    """Short sha-256 prefix identifying a token in logs (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _error_time() -> str:
    """Return the current time in the error-envelope format ``yyyy-MM-ddTHH:mm:ss.SSS+0000``."""
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}+0000"


_AUTH_TYPES = {
    "BAD_CREDENTIALS": ("badCredentials", [401, 0], "UNAUTHORIZED"),
    "UNAUTHORIZED": ("unauthorized", [401, 1], "UNAUTHORIZED"),
    "SESSION_EXPIRED": ("sessionExpired", [401, 2], "UNAUTHORIZED"),
    "ACCESS_DENIED": ("accessDenied", [403, 0], "FORBIDDEN"),
}


def error_envelope(
    code: str, description: str = "", messages: list[str] | None = None
) -> dict[str, Any]:
    """Voluum's error body; auth errors also carry ``typeName``/``typeCode``/``status``."""
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "description": description,
            "messages": messages or [],
            "webRequestId": "req-" + secrets.token_hex(10).upper(),
            "time": _error_time(),
        }
    }
    if code in _AUTH_TYPES:
        body["typeName"], body["typeCode"], body["status"] = _AUTH_TYPES[code]
    return body


@dataclass
class Response:
    """What the handler must send: a normal response, a truncated one or a connection reset."""

    status: int
    body: bytes = b""
    content_type: str = _JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    action: str = "send"  # "send" | "truncate" | "reset"
    fault: str | None = None


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """Encode ``obj`` with msgspec into a JSON response."""
    return Response(status, msgspec.json.encode(obj), headers=headers or [])


def error_response(
    status: int, code: str, description: str = "", messages: list[str] | None = None
) -> Response:
    """Build an error envelope response."""
    return json_response(status, error_envelope(code, description, messages))


@dataclass
class _Session:
    """An issued session token."""

    expires_at: float
    kind: str  # "access" (access key) or "password" (email/password)


class _FaultPlan:
    """Probabilities and deterministic schedules of injected faults (seeded)."""

    def __init__(self, spec: dict[str, Any] | None, seed: int) -> None:
        """Validate a ``faults`` knob value."""
        spec = dict(spec or {})
        self.spec = spec
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
        self.next: list[tuple[str, int]] = []
        for item in spec.get("next", []):
            kind, count = (item, 1) if isinstance(item, str) else (item[0], int(item[1]))
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            self.next.append((kind, count))
        unknown = set(spec) - {
            *FAULT_KINDS,
            "seed",
            "login",
            "paths",
            "burst_length",
            "slow_seconds",
            "schedule",
            "next",
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
class _QueuedFault:
    """A "fail the next N requests with X" order."""

    kind: str
    remaining: int
    login: bool
    path: str | None


class SandboxServer:
    """A Voluum-compatible API on loopback, backed by a deterministic :class:`Dataset`.

    Args:
        dataset: the data to serve (default: ``Dataset()``).
        host: interface to bind (default loopback).
        port: TCP port; 0 picks a free one.
        token_lifetime: seconds a session token stays valid (fixed, not sliding).
        latency: seconds slept before answering each non-admin request.
        rate_limit: max requests per token starting in any sliding 1-second window (``None`` = off).
        faults: fault plan (see README): probabilities per kind, ``schedule``, ``next``, ``seed``...
        retry_after: when set, 429 answers carry ``Retry-After: <value>``.
        workspaces_status, live_status, event_log_status: 200, or 403/404 to make those
            endpoints answer that error.
        dialects: readings of the API to play (names from ``DIALECTS``; default none).
        lose_row_day: ``"YYYY-MM-DD"`` (or a date): campaign x day reports silently lose
            their first row of that day (``None`` = off).

    """

    def __init__(
        self,
        dataset: Dataset | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = 4 * 3600,
        latency: float = 0.0,
        rate_limit: int | None = 15,
        faults: dict[str, Any] | None = None,
        retry_after: int | None = None,
        workspaces_status: int = 200,
        live_status: int = 200,
        event_log_status: int = 200,
        dialects: Collection[str] = (),
        lose_row_day: str | date | None = None,
    ) -> None:
        """Prepare the server (call :meth:`start` to serve)."""
        self.dataset = dataset if dataset is not None else Dataset()
        self.engine = ReportEngine(self.dataset)
        self.dataset.add_change_listener(self.engine.clear_cache)  # late data: no stale cache
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._windows: dict[str, deque[float]] = {}
        self._log: list[dict[str, Any]] = []
        self._fault_counts: Counter[str] = Counter()
        self._queue: list[_QueuedFault] = []
        self._plan = _FaultPlan(None, self.dataset.seed)
        self.token_lifetime = float(token_lifetime)
        self.latency = 0.0
        self.rate_limit: int | None = None
        self.retry_after: int | None = None
        self.workspaces_status = 200
        self.live_status = 200
        self.event_log_status = 200
        self._dialects = Dialects()
        self.configure(
            latency=latency,
            rate_limit=rate_limit,
            faults=faults,
            retry_after=retry_after,
            workspaces_status=workspaces_status,
            live_status=live_status,
            event_log_status=event_log_status,
            dialects=dialects,
            lose_row_day=lose_row_day,
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SandboxServer:
        """Bind and serve in a background daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self.host, self._requested_port), _Handler)
        httpd.sandbox = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="voluum-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        """Start on ``with``."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop at the end of ``with``."""
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def access_id(self) -> str:
        """Access key id accepted by ``POST /auth/access/session``."""
        return self.dataset.access_id

    @property
    def access_key(self) -> str:
        """Access key secret accepted by ``POST /auth/access/session``."""
        return self.dataset.access_key

    @property
    def email(self) -> str:
        """Email accepted by ``POST /auth/session``."""
        return self.dataset.email

    @property
    def password(self) -> str:
        """Password accepted by ``POST /auth/session``."""
        return self.dataset.password

    # ------------------------------------------------------------------ knobs

    @property
    def dialects(self) -> frozenset[str]:
        """Names of the dialects played (empty = the default reading)."""
        return self._dialects.names

    @property
    def lose_row_day(self) -> str | None:
        """The ``lose_row_day`` knob (``"YYYY-MM-DD"`` or ``None``)."""
        return self._dialects.lose_row_day

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime: ``latency``, ``rate_limit``, ``token_lifetime``, ``faults``,
        ``workspaces_status``, ``live_status``, ``event_log_status``, ``retry_after``,
        ``dialects``, ``lose_row_day``.

        ``faults`` replaces the whole fault plan (``None`` or ``{}`` disables faults); its
        ``next`` entries are queued like :meth:`fail_next`.  ``dialects`` replaces the whole
        set of dialects (unknown or contradictory names raise ``ValueError``).
        """  # noqa: D205
        unknown = set(knobs) - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        if "dialects" in knobs or "lose_row_day" in knobs:
            names = parse_dialects(knobs.get("dialects", self._dialects.names))
            day = parse_day(knobs.get("lose_row_day", self._dialects.lose_row_day))
            self._dialects = Dialects(names, day)
        with self._lock:
            if "latency" in knobs:
                self.latency = max(0.0, float(knobs["latency"] or 0.0))
            if "rate_limit" in knobs:
                rl = knobs["rate_limit"]
                self.rate_limit = None if rl is None or int(rl) <= 0 else int(rl)
            if "token_lifetime" in knobs:
                self.token_lifetime = float(knobs["token_lifetime"])
            if "retry_after" in knobs:
                ra = knobs["retry_after"]
                self.retry_after = None if ra is None else int(ra)
            for name in ("workspaces_status", "live_status", "event_log_status"):
                if name in knobs:
                    status = int(knobs[name] or 200)
                    if status not in (200, 403, 404):
                        raise ValueError(f"{name} must be 200, 403 or 404")
                    setattr(self, name, status)
            if "faults" in knobs:
                plan = _FaultPlan(knobs["faults"], self.dataset.seed)
                self._plan = plan
                for kind, count in plan.next:
                    self._queue.append(_QueuedFault(kind, count, plan.login, None))

    def fail_next(
        self, kind: str, count: int = 1, login: bool = False, path: str | None = None
    ) -> None:
        """Answer the next ``count`` data requests (path prefix ``path``; logins too if
        ``login``) with fault ``kind`` (one of ``FAULT_KINDS``), before any random fault.
        """  # noqa: D205
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._queue.append(_QueuedFault(kind, int(count), login, path))

    def expire_tokens(self) -> None:
        """Make every issued token invalid (the next call with it gets 401 SESSION_EXPIRED)."""
        with self._lock:
            for session in self._sessions.values():
                session.expires_at = 0.0

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of the request log (dicts: t, method, path, query, status, token, fault)."""
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
        """Return counts by status, faults injected and max requests per token in any 1-s window."""
        log = self.requests
        by_status = Counter(str(e["status"]) for e in log)
        per_token: dict[str, list[float]] = {}
        accepted: dict[str, list[float]] = {}
        for e in log:
            if e["token"] is not None:
                per_token.setdefault(e["token"], []).append(e["t"])
                if e["status"] != 429:
                    accepted.setdefault(e["token"], []).append(e["t"])
        return {
            "requests": len(log),
            "by_status": dict(sorted(by_status.items())),
            "faults": self.fault_counts,
            "max_per_second": {t: _max_in_window(ts) for t, ts in per_token.items()},
            "max_accepted_per_second": {t: _max_in_window(ts) for t, ts in accepted.items()},
            "report_computations": self.engine.computations,
        }

    # ------------------------------------------------------------------ request handling

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[Response, dict[str, Any] | None]:
        """Process one API request; returns the response and its log entry (``None`` for admin)."""
        t0 = time.monotonic()
        split = urlsplit(raw_path)
        path = unquote(split.path) or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        if path.startswith("/__sandbox__/"):
            return self._admin(method, path, query, body), None
        token = headers.get("cwauth-token")
        entry: dict[str, Any] = {
            "t": t0,
            "method": method,
            "path": path,
            "query": query,
            "status": None,
            "token": token_hash(token) if token else None,
            "fault": None,
        }
        try:
            resp = self._process(method, path, query, token, body, entry=entry)
        except ApiError as exc:
            resp = error_response(exc.status, exc.code, exc.description, exc.messages)
        except Exception as exc:  # the sandbox must answer, not crash
            resp = error_response(500, "INTERNAL_SERVER_ERROR", f"{type(exc).__name__}: {exc}")
        if self.latency > 0:
            time.sleep(self.latency)
        entry["status"] = 0 if resp.action == "reset" else resp.status
        entry["fault"] = resp.fault
        entry["duration"] = time.monotonic() - t0
        with self._log_lock:
            self._log.append(entry)
        return resp, entry

    def _process(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        token: str | None,
        body: bytes,
        *,
        entry: dict[str, Any],
    ) -> Response:
        """Auth, rate limit, faults, then routing (``entry["t"]`` gets the admission time)."""
        is_login = method == "POST" and path.rstrip("/") in (
            "/auth/access/session",
            "/auth/session",
        )
        if is_login:
            fault = self._pick_fault(path, True)
            if fault is not None:
                return self._fault_response(fault, lambda: self._login(path, body))
            return self._login(path, body)
        session_kind = self._check_token(token)
        assert token is not None
        limited, entry["t"] = self._rate_limited(token)
        if limited is not None:
            return limited
        fault = self._pick_fault(path, False)
        if fault is not None:
            return self._fault_response(
                fault, lambda: self._route(method, path, query, token, session_kind)
            )
        return self._route(method, path, query, token, session_kind)

    # ------------------------------------------------------------------ auth

    def _login(self, path: str, body: bytes) -> Response:
        """``POST /auth/access/session`` and ``POST /auth/session``."""
        try:
            data = msgspec.json.decode(body or b"{}")
        except msgspec.DecodeError as exc:
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON body") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON body")
        ds = self.dataset
        if path.rstrip("/") == "/auth/access/session":
            ok = data.get("accessId") == ds.access_id and data.get("accessKey") == ds.access_key
            kind = "access"
        else:
            email = data.get("email")
            ok = (
                isinstance(email, str)
                and email.strip().lower() == ds.email
                and data.get("password") == ds.password
            )
            kind = "password"
        if not ok:
            return error_response(401, "BAD_CREDENTIALS")
        token = secrets.token_hex(16)
        now = time.time()
        with self._lock:
            expires = now + self.token_lifetime
            self._sessions[token] = _Session(expires, kind)
        return json_response(
            200,
            {
                "token": token,
                "expirationTimestamp": iso_ms(int(expires * 1000)),
                "inaugural": False,
            },
        )

    def _check_token(self, token: str | None) -> str:
        """Return the session kind of a live token, else raise a 401 envelope."""
        if not token:
            raise ApiError(401, "UNAUTHORIZED", "Missing cwauth-token header")
        session = self._sessions.get(token)
        if session is None:
            raise ApiError(401, "UNAUTHORIZED", "Invalid session token")
        if time.time() >= session.expires_at:
            raise ApiError(401, "SESSION_EXPIRED", "Session expired")
        return session.kind

    def _rate_limited(self, token: str) -> tuple[Response | None, float]:
        """Sliding 1-second window per token: a 429 envelope when over ``rate_limit``.

        Also returns the admission time (taken under the lock, so times are ordered).
        """
        with self._lock:
            now = time.monotonic()
            limit = self.rate_limit
            if limit is None:
                return None, now
            window = self._windows.setdefault(token, deque())
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

    # ------------------------------------------------------------------ faults

    def _pick_fault(self, path: str, is_login: bool) -> str | None:
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
            if kind is None and self._plan.eligible(path, is_login):
                kind = self._plan.draw()
            if kind is not None:
                self._fault_counts[kind] += 1
            return kind

    def _fault_response(self, kind: str, real: Callable[[], Response]) -> Response:
        """Build the response of an injected fault (``real`` computes the genuine answer)."""
        simple: dict[str, Callable[[], Response]] = {
            "500": lambda: error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            "502_html": lambda: Response(502, _HTML_502, content_type="text/html"),
            "503": lambda: error_response(503, "SERVICE_UNAVAILABLE", "Service unavailable"),
            "reset": lambda: Response(0, action="reset"),
            "burst_429": self._too_many,
            "error_in_200": lambda: json_response(
                200, error_envelope("INTERNAL_SERVER_ERROR", "Unexpected error")
            ),
        }
        if kind in simple:
            resp = simple[kind]()
            resp.fault = kind
            return resp
        if kind == "slow":
            time.sleep(self._plan.slow_seconds)
        try:
            resp = real()
        except ApiError as exc:  # a genuine error wins over a body-level fault: not counted
            with self._lock:
                self._fault_counts[kind] -= 1
                if self._fault_counts[kind] <= 0:
                    del self._fault_counts[kind]
            return error_response(exc.status, exc.code, exc.description, exc.messages)
        if resp.status == 200 and kind == "truncated":
            resp.action = "truncate"
        elif resp.status == 200 and kind == "invalid_json":
            resp.body = (resp.body or b"{}")[: max(1, len(resp.body) // 2)]
        resp.fault = kind
        return resp

    # ------------------------------------------------------------------ routing

    def _route(  # noqa: PLR0911, PLR0912
        self, method: str, path: str, query: dict[str, list[str]], token: str, session_kind: str
    ) -> Response:
        """Dispatch an authenticated request."""
        if session_kind == "access":
            for deny_method, pattern in _DENY:
                if method == deny_method and pattern.match(path):
                    raise ApiError(
                        403,
                        "ACCESS_DENIED",
                        "Access denied for sessions created with an access key",
                    )
        clean = path.rstrip("/") or "/"
        parts = clean.strip("/").split("/")
        if clean == "/auth/session":
            if method == "GET":
                session = self._sessions[token]
                return json_response(
                    200,
                    {
                        "alive": True,
                        "expirationTimestamp": iso_ms(int(session.expires_at * 1000)),
                        "inaugural": False,
                        "time": int(time.time() * 1000),
                    },
                )
            if method == "DELETE":
                with self._lock:
                    self._sessions.pop(token, None)
                return Response(200, b"")
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed on {clean}")
        if method != "GET":
            raise ApiError(
                404, "NOT_FOUND", f"Resource {method} {clean} was not found on this server"
            )
        if parts[0] in _ENTITY_PATHS and len(parts) <= 2:
            return self._entities(parts, query)
        if clean == "/report":
            return json_response(200, self._dialects.report(self.engine, query))
        if clean == "/report/conversions":
            return json_response(200, self._dialects.conversions(self.engine, query))
        if len(parts) == 4 and parts[:2] == ["report", "live"] and parts[2] in ("clicks", "visits"):
            return self._live(parts[2], parts[3], query)
        if clean == "/multiuser/workspace":
            if self.workspaces_status != 200:
                return self._status_error(self.workspaces_status, "/multiuser/workspace")
            return json_response(200, {"workspaces": [dict(w) for w in self.dataset.workspaces]})
        if clean == "/column/info":
            return json_response(200, {"columnMappings": self._dialects.column_info()})
        if clean == "/dictionary/timezone":
            return json_response(200, {"timezones": self._timezones()})
        if clean == "/event-log":
            return self._event_log(query)
        raise ApiError(404, "NOT_FOUND", f"Resource {clean} was not found on this server")

    @staticmethod
    def _status_error(status: int, what: str) -> Response:
        """403/404 envelope used by the ``*_status`` knobs."""
        if status == 403:
            return error_response(
                403, "ACCESS_DENIED", f"Access to {what} is not allowed for this account"
            )
        return error_response(404, "NOT_FOUND", f"Resource {what} was not found on this server")

    def _entities(self, parts: list[str], query: dict[str, list[str]]) -> Response:
        """Entity lists (``includeDeleted``, ``fields``, ``workspaceId``) and single entities."""
        kind = parts[0]
        wrapper = _ENTITY_PATHS[kind][1]
        ds = self.dataset
        if len(parts) == 2:
            found = ds.entity(kind, parts[1])
            if found is None:
                raise ApiError(
                    404, "NOT_FOUND", f"Resource with ID {parts[1]} was not found on this server"
                )
            return json_response(200, found)
        include_deleted = (first(query, "includeDeleted") or "false").lower() == "true"
        wanted = many(query, "fields")
        workspace_ids = set(many(query, "workspaceId", "workspaces"))
        items = []
        for e in ds.raw_entities(kind):
            if e.get("deleted") and not include_deleted:
                continue
            if workspace_ids and e.get("workspace", {}).get("id") not in workspace_ids:
                continue
            items.append({k: v for k, v in e.items() if k in wanted or k == "id"} if wanted else e)
        return json_response(200, {wrapper: items})

    def _timezones(self) -> list[dict[str, str]]:
        """Items of ``GET /dictionary/timezone`` (offset at the dataset start)."""
        out = []
        for name in TIMEZONES:
            off = tz_context(name).offset(self.dataset.start_ts)
            sign = "+" if off >= 0 else "-"
            hh, mm = divmod(abs(off) // 60, 60)
            offset = f"{sign}{hh:02d}:{mm:02d}"
            out.append({"code": name, "name": f"(UTC{offset}) {name}", "offset": offset})
        return out

    def _live(self, kind: str, campaign_id: str, query: dict[str, list[str]]) -> Response:
        """``GET /report/live/{clicks|visits}/{campaignId}``: newest individual visits/clicks."""
        if self.live_status != 200:
            return self._status_error(self.live_status, f"/report/live/{kind}")
        ds = self.dataset
        c = ds.entity_index["campaign"].get(campaign_id)
        if c is None:
            raise ApiError(
                404, "NOT_FOUND", f"Resource with ID {campaign_id} was not found on this server"
            )
        limit, _ = parse_paging(query, 100, 1000)
        tz_name = first(query, "tz") or "Etc/GMT"
        try:
            tzc = tz_context(tz_name)
        except ValueError as exc:
            raise ApiError(400, "BAD_REQUEST", f"Unknown time zone: {tz_name}") from exc
        cutoff = min(int(time.time()) + 1, ds.end_ts)
        rows = []
        for event, j in ds.latest_visits(c, limit, cutoff, clicks_only=kind == "clicks"):
            ts = ds.ev_ts[event]
            details = ds.visit_details(event, j)
            rows.append(
                {
                    "timestamp": ampm(ts + tzc.offset(ts)),
                    **ds.attribution(event),
                    **details,
                    "referrer": f"https://publisher{ds.ev_cv1[event] % 7}.example/page",
                    "userAgent": f"Mozilla/5.0 ({details['os']} {details['osVersion']}) "
                    f"{details['browser']}/{details['browserVersion']}",
                }
            )
        return json_response(200, {"rows": self._dialects.live_rows(kind, rows)})

    def _event_log(self, query: dict[str, list[str]]) -> Response:
        """``GET /event-log``: entries by ``editTime`` (newest first by default), paged."""
        if self.event_log_status != 200:
            return self._status_error(self.event_log_status, "/event-log")
        dialects = self._dialects
        query = dialects.event_log_query(query)
        lo = _parse_instant_ms(first(query, "from"), "from")
        hi = _parse_instant_ms(first(query, "to"), "to")
        limit, offset = parse_paging(query, 100, 10_000)
        direction = (first(query, "direction") or "DESC").upper()
        if direction not in ("ASC", "DESC"):
            raise ApiError(400, "INVALID_QUERY", f"Invalid sort direction: {direction}")
        filters = {
            k: first(query, k)
            for k in ("actionType", "category", "entityId", "userId", "clientId")
            if first(query, k)
        }
        entries = [
            e
            for e in dialects.event_log(self.dataset)
            if (lo is None or e["editTime"] >= lo)
            and (hi is None or e["editTime"] < hi)
            and all(e[k] == v for k, v in filters.items())
        ]
        if direction == "DESC":
            entries = entries[::-1]
        answer = {"eventLogEntries": entries[offset : offset + limit], "totalRows": len(entries)}
        return json_response(200, dialects.event_log_answer(answer))

    # ------------------------------------------------------------------ admin API

    def _admin(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Response:  # noqa: PLR0911
        """Admin API: requests, clear, configure, fail-next, expire-tokens, stats, truth."""
        name = path[len("/__sandbox__/") :].strip("/")
        try:
            data = msgspec.json.decode(body) if body else {}
            if name == "requests" and method == "GET":
                return json_response(200, {"requests": self.requests})
            if name == "stats" and method == "GET":
                return json_response(200, self.stats())
            if name == "clear" and method == "POST":
                self.clear_requests()
                return json_response(200, {"ok": True})
            if name == "configure" and method == "POST":
                self.configure(**data)
                return json_response(200, {"ok": True})
            if name == "fail-next" and method == "POST":
                self.fail_next(**data)
                return json_response(200, {"ok": True})
            if name == "expire-tokens" and method == "POST":
                self.expire_tokens()
                return json_response(200, {"ok": True})
            if name == "truth" and method == "GET":
                return json_response(200, self._truth(query))
            if name == "add-data" and method == "POST":  # see late.py
                return json_response(200, self.dataset.add_late_data(**data))
        except (ValueError, TypeError, msgspec.DecodeError, ApiError) as exc:
            return json_response(400, {"error": {"code": "BAD_REQUEST", "description": str(exc)}})
        return json_response(404, {"error": {"code": "NOT_FOUND", "description": path}})

    def _truth(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """``GET /__sandbox__/truth?from=&to=&tz=&groupBy=&conversionTimeMode=&include=``."""
        tz = first(query, "tz") or "Etc/GMT"
        start = parse_hour_time(first(query, "from") or "", "from")
        end = parse_hour_time(first(query, "to") or "", "to")
        mode = (first(query, "conversionTimeMode") or "VISIT").upper()
        out: dict[str, Any] = {"totals": self.dataset.truth_totals(start, end, tz, mode)}
        groups = many(query, "groupBy")
        if groups:
            include = (first(query, "include") or "ACTIVE").upper()
            rows = self.dataset.truth_rows(groups, start, end, tz, mode, include=include)
            out["rows"] = [
                {"key": list(k), **v} for k, v in sorted(rows.items(), key=lambda kv: str(kv[0]))
            ]
        return out


def _max_in_window(times: list[float], width: float = 1.0) -> int:
    """Largest number of instants in any half-open window of ``width`` seconds."""
    times = sorted(times)
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _parse_instant_ms(value: str | None, name: str) -> int | None:
    """Parse an event-log bound: epoch milliseconds, ``YYYY-MM-DD`` or ISO-8601 (UTC when naive)."""
    if value is None or value == "":
        return None
    v = value.strip()
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    try:
        if len(v) == 10:
            d = date.fromisoformat(v)
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(
            400, "BAD_REQUEST", f"Invalid time format of parameter '{name}': {value}"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that knows its :class:`SandboxServer` and its open connections."""

    daemon_threads = True
    request_queue_size = 256
    sandbox: SandboxServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind and start tracking connections."""
        super().__init__(address, handler)
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection, then serve it in a thread."""
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection and close it."""
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open (keep-alive) connection."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, lets :class:`SandboxServer` answer it and writes the response."""

    protocol_version = "HTTP/1.1"
    server_version = "Voluum-Portal/1.0"
    timeout = 120
    server: _HTTPServer

    def version_string(self) -> str:
        """``Server`` header value."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _serve(self) -> None:
        """Handle any method."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        resp, _ = self.server.sandbox.handle(self.command, self.path, self.headers, body)
        if resp.action == "reset":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        self.send_header("X-Frame-Options", "DENY")
        for key, value in resp.headers:
            self.send_header(key, value)
        self.end_headers()
        if resp.action == "truncate":
            self.close_connection = True
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.wfile.flush()
            return
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve
    do_HEAD = _serve
