"""What each path answers, once a request is admitted: the API's endpoints and the admin API.

API: entities, workspaces, ``/auth/session``, time zones, ``/column/info``, the report endpoints
(the report engine, through the dialects, the range cap and the quirks), live clicks/visits and
the event log, each from the data of the token's account. Admin (``/__sandbox__/``: no auth, no
faults, no latency, not logged): requests, stats, clear, configure, expire-tokens, truth, add-data.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from .accounts import add_data
from .auth import Session, access_denied
from .formats import ampm
from .query import first, parse_hour_time, parse_paging
from .range_cap import check_range
from .responses import ApiError, Response, error_response, json_response
from .timezones import tz_context

if TYPE_CHECKING:
    from .accounts import Account
    from .auth import Sessions
    from .data import Dataset
    from .dialects import Dialects
    from .quirks import Quirks


class SandboxServer(Protocol):
    """What the routes read of :class:`voluum_sandbox.server.SandboxServer` (which imports this
    module, so it is described here rather than imported): accounts, sessions, knobs, request log.
    """  # noqa: D205

    accounts: list[Account]
    sessions: Sessions
    quirks: Quirks
    readings: Dialects
    range_cap: int | None
    range_cap_wording: str
    workspaces_status: int
    live_status: int
    event_log_status: int

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log."""

    def stats(self) -> dict[str, Any]:
        """Counts and busiest windows."""

    def clear_requests(self) -> None:
        """Empty the request log."""

    def configure(self, **knobs: Any) -> None:
        """Change knobs."""

    def expire_tokens(self) -> None:
        """Invalidate every token."""


UTC = timezone.utc
Query = dict[str, list[str]]
# path -> wrapper key of the list
ENTITY_PATHS = {
    "campaign": "campaigns",
    "offer": "offers",
    "lander": "landers",
    "flow": "flows",
    "traffic-source": "trafficSources",
    "affiliate-network": "affiliateNetworks",
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


def api_response(  # noqa: PLR0911, PLR0912
    srv: SandboxServer, method: str, path: str, query: Query, *, token: str, session: Session
) -> Response:
    """Answer an admitted request with the data of the session's account."""
    account = srv.accounts[session.account]
    ds, engine, quirks, dialects = account.dataset, account.engine, srv.quirks, srv.readings
    if session.kind == "access" and access_denied(method, path):
        raise ApiError(
            403, "ACCESS_DENIED", "Access denied for sessions created with an access key"
        )
    clean = path.rstrip("/") or "/"
    parts = clean.strip("/").split("/")
    if clean == "/auth/session":
        return srv.sessions.answer(method, token)
    if method != "GET":
        raise ApiError(404, "NOT_FOUND", f"Resource {method} {clean} was not found on this server")
    if parts[0] in ENTITY_PATHS and len(parts) <= 2:
        return _entities(srv, parts, query, ds)
    if clean in ("/report", "/report/conversions"):
        check_range(query, srv.range_cap, srv.range_cap_wording)
    if clean == "/report":
        return json_response(200, quirks.report(query, dialects.report(engine, query)))
    if clean == "/report/conversions":
        return json_response(200, quirks.conversions(query, dialects.conversions(engine, query)))
    if len(parts) == 4 and parts[:2] == ["report", "live"] and parts[2] in ("clicks", "visits"):
        return _live(srv, parts[2], parts[3], query, account)
    if clean == "/multiuser/workspace":
        if srv.workspaces_status != 200:
            return _status_error(srv.workspaces_status, clean)
        workspaces = [dict(w) for w in ds.workspaces]
        return json_response(200, {"workspaces": quirks.items("workspaces", workspaces)})
    if clean == "/column/info":
        mappings = quirks.items("column-info", dialects.column_info())
        return json_response(200, {"columnMappings": mappings})
    if clean == "/dictionary/timezone":
        return json_response(200, {"timezones": _timezones(ds)})
    if clean == "/event-log":
        return _event_log(srv, query, ds)
    raise ApiError(404, "NOT_FOUND", f"Resource {clean} was not found on this server")


def _status_error(status: int, what: str) -> Response:
    """403/404 envelope used by the ``*_status`` knobs."""
    if status == 403:
        return error_response(
            403, "ACCESS_DENIED", f"Access to {what} is not allowed for this account"
        )
    return error_response(404, "NOT_FOUND", f"Resource {what} was not found on this server")


def _not_found(entity_id: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"Resource with ID {entity_id} was not found on this server")


def _entities(srv: SandboxServer, parts: list[str], query: Query, ds: Dataset) -> Response:
    """Entity lists (``includeDeleted``) and single entities."""
    kind = parts[0]
    if len(parts) == 2:
        found = ds.entity(kind, parts[1])
        if found is None:
            raise _not_found(parts[1])
        return json_response(200, found)
    include_deleted = (first(query, "includeDeleted") or "false").lower() == "true"
    items = [e for e in ds.raw_entities(kind) if include_deleted or not e.get("deleted")]
    return json_response(200, {ENTITY_PATHS[kind]: srv.quirks.items(kind, items)})


def _timezones(ds: Dataset) -> list[dict[str, str]]:
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
    srv: SandboxServer, kind: str, campaign_id: str, query: Query, account: Account
) -> Response:
    """``GET /report/live/{clicks|visits}/{campaignId}``: newest individual visits/clicks."""
    if srv.live_status != 200:
        return _status_error(srv.live_status, f"/report/live/{kind}")
    ds = account.dataset
    c = ds.entity_index["campaign"].get(campaign_id)
    if c is None:
        raise _not_found(campaign_id)
    limit, _ = parse_paging(query, 100, 1000)
    tz_name = first(query, "tz") or "Etc/GMT"
    try:
        tzc = tz_context(tz_name)
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", f"Unknown time zone: {tz_name}") from exc
    cutoff = min(ds.clock_ms() // 1000 + 1, ds.end_ts)
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
    rows = srv.quirks.live_rows(kind, srv.readings.live_rows(kind, rows), limit)
    return json_response(200, {"rows": rows})


def _event_log(srv: SandboxServer, query: Query, ds: Dataset) -> Response:
    """``GET /event-log``: entries by ``editTime`` (newest first by default), paged."""
    if srv.event_log_status != 200:
        return _status_error(srv.event_log_status, "/event-log")
    dialects = srv.readings
    query = dialects.event_log_query(query)
    lo = parse_instant_ms(first(query, "from"), "from")
    hi = parse_instant_ms(first(query, "to"), "to")
    srv.quirks.check_event_log(query, lo, hi)
    limit, offset = parse_paging(query, 100, 10_000)
    direction = (first(query, "direction") or "DESC").upper()
    if direction not in ("ASC", "DESC"):
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort direction: {direction}")
    cut = ds.visible_before()  # the clock: later edits have not happened yet
    if cut is not None:
        hi = cut * 1000 if hi is None else min(hi, cut * 1000)
    entries = [
        e
        for e in dialects.event_log(ds)
        if (lo is None or e["editTime"] >= lo) and (hi is None or e["editTime"] < hi)
    ]
    if direction == "DESC":
        entries = entries[::-1]
    page = srv.quirks.event_log(entries[offset : offset + limit], offset)
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


# --------------------------------------------------------------------------- admin API


def admin_response(  # noqa: PLR0911
    srv: SandboxServer, method: str, path: str, query: Query, body: bytes
) -> Response:
    """Answer ``/__sandbox__/<name>``; a bad argument is a 400, an unknown name a 404."""
    name = path[len("/__sandbox__/") :].strip("/")
    try:
        data = msgspec.json.decode(body) if body else {}
        if name == "requests" and method == "GET":
            return json_response(200, {"requests": srv.requests})
        if name == "stats" and method == "GET":
            return json_response(200, srv.stats())
        if name == "clear" and method == "POST":
            srv.clear_requests()
            return json_response(200, {"ok": True})
        if name == "configure" and method == "POST":
            srv.configure(**data)
            return json_response(200, {"ok": True})
        if name == "expire-tokens" and method == "POST":
            srv.expire_tokens()
            return json_response(200, {"ok": True})
        if name == "truth" and method == "GET":
            return json_response(200, _truth(srv, query))
        if name == "add-data" and method == "POST":  # see late.py
            return json_response(200, add_data(srv.accounts, data))
    except (ValueError, TypeError, msgspec.DecodeError, ApiError) as exc:
        return json_response(400, {"error": {"code": "BAD_REQUEST", "description": str(exc)}})
    return json_response(404, {"error": {"code": "NOT_FOUND", "description": path}})


def _truth(srv: SandboxServer, query: Query) -> dict[str, Any]:
    """``GET /__sandbox__/truth?from=&to=&account=``: an account's totals (UTC wall clock)."""
    index = int(first(query, "account") or 0)
    if not 0 <= index < len(srv.accounts):
        raise ValueError(f"account must be an index below {len(srv.accounts)}")
    start = parse_hour_time(first(query, "from") or "", "from")
    end = parse_hour_time(first(query, "to") or "", "to")
    return {"totals": srv.accounts[index].dataset.truth_totals(start, end)}
