"""Routing of authenticated API requests, and the endpoints answered from the dataset.

Entities, workspaces, ``/auth/session``, time zones, live clicks/visits and the event log; the
report endpoints are answered by the report engine, through the dialects.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from .auth import Session, access_denied
from .formats import ampm, iso_ms
from .query import first, parse_paging
from .range_cap import check_range
from .responses import ApiError, Response, error_response, json_response
from .timezones import tz_context

if TYPE_CHECKING:
    from .accounts import Account
    from .data import Dataset
    from .dialects import Dialects
    from .quirks import Quirks

UTC = timezone.utc
ENTITY_PATHS = {
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


class Routes:
    """Part of :class:`~voluum_sandbox.server.SandboxServer`: routing and data endpoints."""

    workspaces_status: int
    live_status: int
    event_log_status: int
    range_cap: int | None
    range_cap_wording: str
    _dialects: Dialects
    _quirks: Quirks
    _lock: threading.Lock
    _sessions: dict[str, Session]

    def _route(  # noqa: PLR0911, PLR0912
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        token: str,
        session_kind: str,
        *,
        account: Account,
    ) -> Response:
        """Dispatch an authenticated request to the data of the token's ``account``."""
        ds, engine = account.dataset, account.engine
        if session_kind == "access" and access_denied(method, path):
            raise ApiError(
                403, "ACCESS_DENIED", "Access denied for sessions created with an access key"
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
        if parts[0] in ENTITY_PATHS and len(parts) <= 2:
            return self._entities(parts, query, ds)
        quirks = self._quirks
        if clean in ("/report", "/report/conversions"):
            check_range(query, self.range_cap, self.range_cap_wording)
        if clean == "/report":
            answer = self._dialects.report(engine, query)
            return json_response(200, quirks.report(query, answer))
        if clean == "/report/conversions":
            answer = self._dialects.conversions(engine, query)
            return json_response(200, quirks.conversions(query, answer))
        if len(parts) == 4 and parts[:2] == ["report", "live"] and parts[2] in ("clicks", "visits"):
            return self._live(parts[2], parts[3], query, ds)
        if clean == "/multiuser/workspace":
            if self.workspaces_status != 200:
                return self._status_error(self.workspaces_status, "/multiuser/workspace")
            workspaces = [dict(w) for w in ds.workspaces]
            return json_response(200, {"workspaces": quirks.items("workspaces", workspaces)})
        if clean == "/column/info":
            mappings = quirks.items("column-info", self._dialects.column_info())
            return json_response(200, {"columnMappings": mappings})
        if clean == "/dictionary/timezone":
            return json_response(200, {"timezones": self._timezones(ds)})
        if clean == "/event-log":
            return self._event_log(query, ds)
        raise ApiError(404, "NOT_FOUND", f"Resource {clean} was not found on this server")

    @staticmethod
    def _status_error(status: int, what: str) -> Response:
        """403/404 envelope used by the ``*_status`` knobs."""
        if status == 403:
            return error_response(
                403, "ACCESS_DENIED", f"Access to {what} is not allowed for this account"
            )
        return error_response(404, "NOT_FOUND", f"Resource {what} was not found on this server")

    def _entities(self, parts: list[str], query: dict[str, list[str]], ds: Dataset) -> Response:
        """Entity lists (``includeDeleted``) and single entities."""
        kind = parts[0]
        wrapper = ENTITY_PATHS[kind][1]
        if len(parts) == 2:
            found = ds.entity(kind, parts[1])
            if found is None:
                raise ApiError(
                    404, "NOT_FOUND", f"Resource with ID {parts[1]} was not found on this server"
                )
            return json_response(200, found)
        include_deleted = (first(query, "includeDeleted") or "false").lower() == "true"
        items = [e for e in ds.raw_entities(kind) if include_deleted or not e.get("deleted")]
        return json_response(200, {wrapper: self._quirks.items(kind, items)})

    def _timezones(self, ds: Dataset) -> list[dict[str, str]]:
        """Items of ``GET /dictionary/timezone`` (offset at the dataset start)."""
        out = []
        for name in TIMEZONES:
            off = tz_context(name).offset(ds.start_ts)
            sign = "+" if off >= 0 else "-"
            hh, mm = divmod(abs(off) // 60, 60)
            offset = f"{sign}{hh:02d}:{mm:02d}"
            out.append({"code": name, "name": f"(UTC{offset}) {name}", "offset": offset})
        return out

    def _live(
        self, kind: str, campaign_id: str, query: dict[str, list[str]], ds: Dataset
    ) -> Response:
        """``GET /report/live/{clicks|visits}/{campaignId}``: newest individual visits/clicks."""
        if self.live_status != 200:
            return self._status_error(self.live_status, f"/report/live/{kind}")
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
        rows = self._quirks.live_rows(kind, self._dialects.live_rows(kind, rows), limit)
        return json_response(200, {"rows": rows})

    def _event_log(self, query: dict[str, list[str]], ds: Dataset) -> Response:
        """``GET /event-log``: entries by ``editTime`` (newest first by default), paged."""
        if self.event_log_status != 200:
            return self._status_error(self.event_log_status, "/event-log")
        dialects = self._dialects
        query = dialects.event_log_query(query)
        lo = parse_instant_ms(first(query, "from"), "from")
        hi = parse_instant_ms(first(query, "to"), "to")
        self._quirks.check_event_log(query, lo, hi)
        limit, offset = parse_paging(query, 100, 10_000)
        direction = (first(query, "direction") or "DESC").upper()
        if direction not in ("ASC", "DESC"):
            raise ApiError(400, "INVALID_QUERY", f"Invalid sort direction: {direction}")
        entries = [
            e
            for e in dialects.event_log(ds)
            if (lo is None or e["editTime"] >= lo) and (hi is None or e["editTime"] < hi)
        ]
        if direction == "DESC":
            entries = entries[::-1]
        page = self._quirks.event_log(entries[offset : offset + limit], offset)
        answer = {"eventLogEntries": page, "totalRows": len(entries)}
        return json_response(200, dialects.event_log_answer(answer))


def parse_instant_ms(value: str | None, name: str) -> int | None:
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
