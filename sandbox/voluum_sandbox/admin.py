"""Admin API under ``/__sandbox__/``: no auth, no faults, no latency, not logged.

Endpoints: requests, stats, clear, configure, fail-next, expire-tokens, truth and add-data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .accounts import add_data
from .query import first, many, parse_hour_time
from .responses import ApiError, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer


def admin_response(  # noqa: PLR0911
    srv: SandboxServer, method: str, path: str, query: dict[str, list[str]], body: bytes
) -> Response:
    """Admin API: requests, clear, configure, fail-next, expire-tokens, stats, truth."""
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
        if name == "fail-next" and method == "POST":
            srv.fail_next(**data)
            return json_response(200, {"ok": True})
        if name == "expire-tokens" and method == "POST":
            srv.expire_tokens()
            return json_response(200, {"ok": True})
        if name == "truth" and method == "GET":
            return json_response(200, truth_answer(srv, query))
        if name == "add-data" and method == "POST":  # see late.py
            return json_response(200, add_data(srv.accounts, data))
    except (ValueError, TypeError, msgspec.DecodeError, ApiError) as exc:
        return json_response(400, {"error": {"code": "BAD_REQUEST", "description": str(exc)}})
    return json_response(404, {"error": {"code": "NOT_FOUND", "description": path}})


def truth_answer(srv: SandboxServer, query: dict[str, list[str]]) -> dict[str, Any]:
    """``GET /__sandbox__/truth?from=&to=&tz=&groupBy=&conversionTimeMode=&include=&account=``."""
    index = int(first(query, "account") or 0)
    if not 0 <= index < len(srv.accounts):
        raise ValueError(f"account must be an index below {len(srv.accounts)}")
    ds = srv.accounts[index].dataset
    tz = first(query, "tz") or "Etc/GMT"
    start = parse_hour_time(first(query, "from") or "", "from")
    end = parse_hour_time(first(query, "to") or "", "to")
    mode = (first(query, "conversionTimeMode") or "VISIT").upper()
    out: dict[str, Any] = {"totals": ds.truth_totals(start, end, tz, mode)}
    groups = many(query, "groupBy")
    if groups:
        include = (first(query, "include") or "ACTIVE").upper()
        rows = ds.truth_rows(groups, start, end, tz, mode, include=include)
        out["rows"] = [
            {"key": list(k), **v} for k, v in sorted(rows.items(), key=lambda kv: str(kv[0]))
        ]
    return out
