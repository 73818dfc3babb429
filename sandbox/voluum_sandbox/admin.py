"""Admin API under ``/__sandbox__/``: no auth, no faults, no latency, not logged.

Endpoints: requests, stats, clear, configure, expire-tokens, truth and add-data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .accounts import add_data
from .query import first, parse_hour_time
from .responses import ApiError, Response, json_response

if TYPE_CHECKING:
    from .server import SandboxServer


def admin_response(  # noqa: PLR0911
    srv: SandboxServer, method: str, path: str, query: dict[str, list[str]], body: bytes
) -> Response:
    """Admin API: requests, stats, clear, configure, expire-tokens, truth, add-data."""
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
            return json_response(200, truth_answer(srv, query))
        if name == "add-data" and method == "POST":  # see late.py
            return json_response(200, add_data(srv.accounts, data))
    except (ValueError, TypeError, msgspec.DecodeError, ApiError) as exc:
        return json_response(400, {"error": {"code": "BAD_REQUEST", "description": str(exc)}})
    return json_response(404, {"error": {"code": "NOT_FOUND", "description": path}})


def truth_answer(srv: SandboxServer, query: dict[str, list[str]]) -> dict[str, Any]:
    """``GET /__sandbox__/truth?from=&to=&account=``: an account's totals (UTC wall clock)."""
    index = int(first(query, "account") or 0)
    if not 0 <= index < len(srv.accounts):
        raise ValueError(f"account must be an index below {len(srv.accounts)}")
    start = parse_hour_time(first(query, "from") or "", "from")
    end = parse_hour_time(first(query, "to") or "", "to")
    return {"totals": srv.accounts[index].dataset.truth_totals(start, end)}
