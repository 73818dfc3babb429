"""The sandbox server: :class:`SandboxServer`, a Voluum-compatible API on loopback.

It holds the knobs, runs the HTTP transport (``transport.py``) in a background daemon thread and
passes every request through its pipeline: a login (``auth.py``), or a session check, the rate
limit, faults (``faults.py``) and the routes (``routes.py``); then it logs it. Knobs change at
runtime through :meth:`SandboxServer.configure` or the admin API (``/__sandbox__/``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .accounts import Account, build_accounts
from .auth import Sessions, token_hash
from .data import Dataset
from .dialects import Dialects, parse_day, parse_dialects
from .faults import Faults
from .formats import instant_ms
from .quirks import QUIRK_KNOBS, Quirks
from .range_cap import DEFAULT_WORDING, parse_range_cap, parse_wording
from .reports import ReportEngine
from .responses import ApiError, Response, error_response
from .routes import admin_response, api_response
from .transport import RequestHandler, SandboxHTTPServer

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
    "range_cap",
    "range_cap_wording",
    "rate_limit_scope",
    "now",
    *QUIRK_KNOBS,
)
RATE_LIMIT_SCOPES = ("token", "address")
LOGIN_PATHS = ("/auth/access/session", "/auth/session")


class SandboxServer:
    """A Voluum-compatible API on loopback, backed by a deterministic :class:`Dataset`.

    Args:
        dataset: the data to serve (default: ``Dataset()``), as the only account.
        accounts: several accounts on one port instead: one :class:`Dataset` each, every one
            with its own seed (``srv.accounts[i]``: credentials, ``dataset``; see
            ``accounts.py``). Not with ``dataset``.
        host: interface to bind (default loopback).
        port: TCP port; 0 picks a free one.
        token_lifetime: seconds a session token stays valid (fixed, not sliding).
        latency: seconds slept before answering each non-admin request.
        rate_limit: max requests per token starting in any sliding 1-second window (``None`` = off).
        rate_limit_scope: ``"token"`` (each token its own ``rate_limit``) or ``"address"`` (one
            budget for every request from one client address, all accounts together).
        faults: fault plan (see README): probabilities per kind, ``schedule``, ``next``, ``seed``...
        retry_after: when set, 429 answers carry ``Retry-After: <value>``.
        workspaces_status, live_status, event_log_status: 200, or 403/404 to make those
            endpoints answer that error.
        dialects: readings of the API to play (names from ``DIALECTS``; default none).
        lose_row_day: ``"YYYY-MM-DD"`` (or a date): campaign x day reports silently lose
            their first row of that day (``None`` = off).
        range_cap: days: ``/report`` and ``/report/conversions`` refuse a longer window with
            400 (``None``/0 = off; see ``range_cap.py``).
        range_cap_wording: the refusal's code and description (``RANGE_CAP_WORDINGS``).
        now: the sandbox clock of every account (``Dataset.set_now``): an instant (datetime,
            naive = UTC, or ISO-8601 text); ``None`` = the real clock. Later data is invisible.
        quirks: the knobs of ``quirks.py`` (``odd_shapes``, ``cents_off_day``, ``twin_visits``,
            ``clock_behind``, ``event_log_requires_to``); all off by default.

    """

    def __init__(
        self,
        dataset: Dataset | None = None,
        *,
        accounts: Sequence[Dataset] | None = None,
        rate_limit_scope: str = "token",
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
        range_cap: int | None = None,
        range_cap_wording: str = DEFAULT_WORDING,
        now: datetime | str | None = None,
        **quirks: Any,
    ) -> None:
        """Prepare the server (call :meth:`start` to serve)."""
        self.accounts: list[Account] = build_accounts(dataset, accounts)
        self.dataset: Dataset = self.accounts[0].dataset
        self.engine: ReportEngine = self.accounts[0].engine
        self.host = host
        self._requested_port = port
        self.sessions = Sessions(self.accounts, token_lifetime)
        self.faults = Faults(self.dataset.seed)
        self._lock = threading.Lock()  # knobs and the rate limit's windows
        self._windows: dict[str, deque[float]] = {}
        self._log_lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self.latency = 0.0
        self.rate_limit: int | None = None
        self.rate_limit_scope = "token"
        self.retry_after: int | None = None
        self.workspaces_status = 200
        self.live_status = 200
        self.event_log_status = 200
        self.readings = Dialects()  # the dialects played, with ``lose_row_day``
        self.range_cap: int | None = None
        self.range_cap_wording = DEFAULT_WORDING
        self.quirks = Quirks()  # ``srv.quirks.odd_shapes``...
        if now is not None:  # else each dataset keeps its own clock
            quirks["now"] = now
        self.configure(
            **quirks,
            latency=latency,
            rate_limit=rate_limit,
            faults=faults,
            retry_after=retry_after,
            workspaces_status=workspaces_status,
            live_status=live_status,
            event_log_status=event_log_status,
            dialects=dialects,
            lose_row_day=lose_row_day,
            range_cap=range_cap,
            range_cap_wording=range_cap_wording,
            rate_limit_scope=rate_limit_scope,
        )
        self._httpd: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SandboxServer:
        """Bind and serve in a background daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        httpd = SandboxHTTPServer((self.host, self._requested_port), RequestHandler)
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
        return self.readings.names

    @property
    def lose_row_day(self) -> str | None:
        """The ``lose_row_day`` knob (``"YYYY-MM-DD"`` or ``None``)."""
        return self.readings.lose_row_day

    @property
    def now(self) -> datetime | None:
        """The sandbox clock (the first account's; ``None`` = the real clock)."""
        return self.dataset.now

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime (names in ``KNOBS``; see the README): all are validated
        before any changes, so a ``ValueError`` changes nothing.

        ``faults`` replaces the whole fault plan (``None`` or ``{}`` disables faults);
        ``dialects`` replaces the whole set of dialects.
        """  # noqa: D205
        unknown = set(knobs) - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        cap = parse_range_cap(knobs.get("range_cap", self.range_cap))
        wording = parse_wording(knobs.get("range_cap_wording", self.range_cap_wording))
        scope = parse_scope(knobs.get("rate_limit_scope", self.rate_limit_scope))
        quirks = {k: v for k, v in knobs.items() if k in QUIRK_KNOBS}
        changed_quirks = self.quirks.configured(**quirks) if quirks else self.quirks
        readings = self.readings
        if "dialects" in knobs or "lose_row_day" in knobs:
            names = parse_dialects(knobs.get("dialects", readings.names))
            readings = Dialects(names, parse_day(knobs.get("lose_row_day", readings.lose_row_day)))
        statuses = {}
        for name in ("workspaces_status", "live_status", "event_log_status"):
            if name in knobs:
                statuses[name] = int(knobs[name] or 200)
                if statuses[name] not in (200, 403, 404):
                    raise ValueError(f"{name} must be 200, 403 or 404")
        now = instant_ms(knobs["now"], "now") if knobs.get("now") is not None else None
        if "faults" in knobs:
            self.faults.configure(knobs["faults"])
        self._set_clock(knobs, now)
        self.range_cap, self.range_cap_wording = cap, wording
        self.rate_limit_scope = scope
        self.quirks, self.readings = changed_quirks, readings
        for name, status in statuses.items():
            setattr(self, name, status)
        with self._lock:
            if "latency" in knobs:
                self.latency = max(0.0, float(knobs["latency"] or 0.0))
            if "rate_limit" in knobs:
                rl = knobs["rate_limit"]
                self.rate_limit = None if rl is None or int(rl) <= 0 else int(rl)
            if "token_lifetime" in knobs:
                self.sessions.lifetime = float(knobs["token_lifetime"])
            if "retry_after" in knobs:
                ra = knobs["retry_after"]
                self.retry_after = None if ra is None else int(ra)

    def _set_clock(self, knobs: dict[str, Any], now: int | None) -> None:
        """Apply a validated ``now`` knob (when given) to every account's dataset."""
        if "now" in knobs:
            for account in self.accounts:
                account.dataset.set_now(now)

    def fail_next(
        self, kind: str, count: int = 1, login: bool = False, path: str | None = None
    ) -> None:
        """Answer the next ``count`` data requests (path prefix ``path``; logins too if
        ``login``) with fault ``kind`` (one of ``FAULT_KINDS``), before any random fault.
        """  # noqa: D205
        self.faults.fail_next(kind, count, login, path)

    def expire_tokens(self) -> None:
        """Make every issued token, of every account, invalid (next call: 401 SESSION_EXPIRED)."""
        self.sessions.expire_all()

    # ------------------------------------------------------------------ request handling

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes, client: str | None = None
    ) -> tuple[Response, dict[str, Any] | None]:
        """Process one request from address ``client``: its response and its log entry
        (``None`` for the admin API).
        """  # noqa: D205
        t0 = time.monotonic()
        split = urlsplit(raw_path)
        path = unquote(split.path) or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        if path.startswith("/__sandbox__/"):
            return admin_response(self, method, path, query, body), None
        token = headers.get("cwauth-token")
        entry: dict[str, Any] = {
            "t": t0,
            "method": method,
            "path": path,
            "query": query,
            "status": None,
            "token": token_hash(token) if token else None,
            "account": None,
            "client": client,
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
        """Login, or session check, rate limit, faults and routes (``entry["t"]`` gets the
        admission time, ``entry["account"]`` the index of the account served).
        """  # noqa: D205
        if method == "POST" and path.rstrip("/") in LOGIN_PATHS:

            def login() -> Response:
                resp, account = self.sessions.login(path, body)
                entry["account"] = None if account is None else account.index
                return resp

            fault = self.faults.pick(path, True)
            return login() if fault is None else self.faults.respond(fault, login, self._too_many)
        session = self.sessions.check(token)
        assert token is not None
        entry["account"] = session.account
        limited, entry["t"] = self._admit(token, entry["client"])
        if limited is not None:
            return limited
        fault = self.faults.pick(path, False)

        def route() -> Response:
            return api_response(self, method, path, query, token=token, session=session)

        return route() if fault is None else self.faults.respond(fault, route, self._too_many)

    def _admit(self, token: str, client: str | None) -> tuple[Response | None, float]:
        """The rate limit: at most ``rate_limit`` requests per budget (a token, or a client
        address) in any sliding 1-s window, else a 429; also the admission time (taken under
        the lock, so times are ordered).
        """  # noqa: D205
        with self._lock:
            now = time.monotonic()
            if self.rate_limit is None:
                return None, now
            key = token if self.rate_limit_scope == "token" else f"address:{client}"
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.rate_limit:
                return self._too_many(), now
            window.append(now)
        return None, now

    def _too_many(self) -> Response:
        """429 ``NUMBER_OF_REQUEST_FOR_IP_EXCEEDED`` (with ``Retry-After`` when configured)."""
        resp = error_response(
            429, "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED", "Number of requests for IP exceeded"
        )
        if self.retry_after is not None:
            resp.headers.append(("Retry-After", str(self.retry_after)))
        return resp

    # ------------------------------------------------------------------ request log

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
        self.faults.clear()

    @property
    def fault_counts(self) -> dict[str, int]:
        """Number of responses affected by each fault kind since the last clear."""
        return self.faults.counts()

    def stats(self) -> dict[str, Any]:
        """Counts by status and the busiest 1-s windows: per token, per account, all together."""
        log = self.requests
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
        return {
            "requests": len(log),
            "by_status": dict(sorted(Counter(str(e["status"]) for e in log).items())),
            "max_per_second": {t: max_in_window(ts) for t, ts in per_token.items()},
            "max_accepted_per_second": {t: max_in_window(ts) for t, ts in accepted.items()},
            "by_account": {a: len(ts) for a, ts in sorted(per_account.items())},
            "max_per_second_by_account": {
                a: max_in_window(ts) for a, ts in sorted(per_account.items())
            },
            "max_per_second_all": max_in_window([t for ts in per_token.values() for t in ts]),
            "max_accepted_per_second_all": max_in_window(
                [t for ts in accepted.values() for t in ts]
            ),
        }


def parse_scope(value: Any) -> str:
    """Validate a ``rate_limit_scope`` knob value (``token`` or ``address``)."""
    scope = "token" if value is None or value == "" else str(value).lower()
    if scope not in RATE_LIMIT_SCOPES:
        raise ValueError(f"rate_limit_scope must be one of {RATE_LIMIT_SCOPES}, not {value!r}")
    return scope


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
