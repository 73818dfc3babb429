"""What the API answers: :class:`ApiError`, Voluum's error envelope and :class:`Response`.

A :class:`Response` is what the HTTP layer writes: a normal answer, a truncated one or a
connection reset.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import msgspec

UTC = timezone.utc
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class ApiError(Exception):
    """An error answered with Voluum's ``{"error": {...}}`` envelope."""

    def __init__(
        self, status: int, code: str, description: str = "", messages: Sequence[str] = ()
    ) -> None:
        """Store HTTP status, error code, description and messages."""
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.messages = list(messages)


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
    content_type: str = JSON_CONTENT_TYPE
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
