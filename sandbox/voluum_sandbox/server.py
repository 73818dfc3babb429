"""The sandbox server: :class:`SandboxServer`, a Voluum-compatible API on loopback.

It holds the knobs, runs the HTTP transport in a background daemon thread and passes every
request through auth, the rate limit and faults to the routes, logging it. Knobs can be changed
at runtime through :meth:`SandboxServer.configure` or the admin API under ``/__sandbox__/``
(``admin.py``: no auth, no faults, not logged). The parts live in ``auth.py``, ``limits.py``,
``faults.py``, ``routes.py``, ``request_log.py`` and ``transport.py``; the names this module
used to define are re-exported from here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .accounts import Account, build_accounts, parse_scope
from .admin import admin_response
from .auth import Session, SessionAuth, token_hash
from .data import Dataset
from .dialects import Dialects, parse_day, parse_dialects
from .faults import FAULT_KINDS, FaultInjector, FaultPlan, QueuedFault
from .quirks import QUIRK_KNOBS, Quirks
from .range_cap import DEFAULT_WORDING, parse_range_cap, parse_wording
from .reports import ReportEngine
from .request_log import RequestLog
from .responses import ApiError, Response, error_response
from .routes import Routes
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
    *QUIRK_KNOBS,
)


class SandboxServer(SessionAuth, FaultInjector, Routes, RequestLog):
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
        **quirks: Any,
    ) -> None:
        """Prepare the server (call :meth:`start` to serve)."""
        self.accounts: list[Account] = build_accounts(dataset, accounts)
        self.dataset: Dataset = self.accounts[0].dataset
        self.engine: ReportEngine = self.accounts[0].engine
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._windows: dict[str, deque[float]] = {}
        self._log: list[dict[str, Any]] = []
        self._fault_counts: Counter[str] = Counter()
        self._queue: list[QueuedFault] = []
        self._plan = FaultPlan(None, self.dataset.seed)
        self.token_lifetime = float(token_lifetime)
        self.latency = 0.0
        self.rate_limit: int | None = None
        self.rate_limit_scope = "token"
        self.retry_after: int | None = None
        self.workspaces_status = 200
        self.live_status = 200
        self.event_log_status = 200
        self._dialects = Dialects()
        self.range_cap: int | None = None
        self.range_cap_wording = DEFAULT_WORDING
        self._quirks = Quirks()
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
        return self._dialects.names

    @property
    def quirks(self) -> Quirks:
        """The quirks played (``quirks.py``): ``srv.quirks.odd_shapes``..."""
        return self._quirks

    @property
    def lose_row_day(self) -> str | None:
        """The ``lose_row_day`` knob (``"YYYY-MM-DD"`` or ``None``)."""
        return self._dialects.lose_row_day

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime: ``latency``, ``rate_limit``, ``token_lifetime``, ``faults``,
        ``workspaces_status``, ``live_status``, ``event_log_status``, ``retry_after``,
        ``dialects``, ``lose_row_day``, ``range_cap``, ``range_cap_wording``,
        ``rate_limit_scope`` and the quirks (``odd_shapes``, ``cents_off_day``,
        ``twin_visits``, ``clock_behind``, ``event_log_requires_to``).

        ``faults`` replaces the whole fault plan (``None`` or ``{}`` disables faults).
        ``dialects`` replaces the whole
        set of dialects (unknown or contradictory names raise ``ValueError``).
        """  # noqa: D205
        unknown = set(knobs) - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        cap = parse_range_cap(knobs.get("range_cap", self.range_cap))
        wording = parse_wording(knobs.get("range_cap_wording", self.range_cap_wording))
        scope = parse_scope(knobs.get("rate_limit_scope", self.rate_limit_scope))
        quirks = {k: v for k, v in knobs.items() if k in QUIRK_KNOBS}
        changed_quirks = self._quirks.configured(**quirks) if quirks else self._quirks
        if "dialects" in knobs or "lose_row_day" in knobs:
            names = parse_dialects(knobs.get("dialects", self._dialects.names))
            day = parse_day(knobs.get("lose_row_day", self._dialects.lose_row_day))
            self._dialects = Dialects(names, day)
        self.range_cap, self.range_cap_wording = cap, wording
        self.rate_limit_scope = scope
        self._quirks = changed_quirks
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
                self._plan = FaultPlan(knobs["faults"], self.dataset.seed)

    def fail_next(
        self, kind: str, count: int = 1, login: bool = False, path: str | None = None
    ) -> None:
        """Answer the next ``count`` data requests (path prefix ``path``; logins too if
        ``login``) with fault ``kind`` (one of ``FAULT_KINDS``), before any random fault.
        """  # noqa: D205
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._queue.append(QueuedFault(kind, int(count), login, path))

    def expire_tokens(self) -> None:
        """Make every issued token, of every account, invalid (next call: 401 SESSION_EXPIRED)."""
        with self._lock:
            for session in self._sessions.values():
                session.expires_at = 0.0

    # ------------------------------------------------------------------ request handling

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes, client: str | None = None
    ) -> tuple[Response, dict[str, Any] | None]:
        """Process one API request from address ``client``; returns the response and its log
        entry (``None`` for admin).
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
            resp = self._process(method, path, query, token, body, entry=entry, client=client)
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
        client: str | None = None,
    ) -> Response:
        """Auth, rate limit, faults, then routing (``entry["t"]`` gets the admission time,
        ``entry["account"]`` the index of the account served).
        """  # noqa: D205
        is_login = method == "POST" and path.rstrip("/") in (
            "/auth/access/session",
            "/auth/session",
        )
        if is_login:
            fault = self._pick_fault(path, True)
            if fault is not None:
                return self._fault_response(fault, lambda: self._login(path, body, entry))
            return self._login(path, body, entry)
        session = self._check_session(token)
        assert token is not None
        account = self.accounts[session.account]
        entry["account"] = account.index
        limited, entry["t"] = self._rate_limited(token, client)
        if limited is not None:
            return limited
        fault = self._pick_fault(path, False)
        kind = session.kind
        if fault is not None:
            return self._fault_response(
                fault, lambda: self._route(method, path, query, token, kind, account=account)
            )
        return self._route(method, path, query, token, kind, account=account)
