"""Errors that end a sync with a one-line message instead of a traceback."""

from __future__ import annotations

import re

import msgspec
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

RATE_LIMIT_CODE = "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED"
# Codes in an `error` object that describe trouble on Voluum's side, worth a retry.
TRANSIENT_CODES = frozenset(
    {RATE_LIMIT_CODE, "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "GATEWAY_TIMEOUT"}
)
# Codes of a 400 saying a parameter value was not understood (a reading to change).
REFUSED_PARAMETER_CODES = frozenset({"INVALID_QUERY", "BAD_REQUEST", "PARAMETER_MISSING"})
# Words of a 400 about the time range itself (too long, reversed), not a parameter's spelling.
_RANGE_WORDS = re.compile(
    r"(time|date)\s*range|range\s+(is\s+)?too\s+(long|large|wide)|\bperiod\b|\bspan\b"
    r"|days?\s+apart|too\s+many\s+days|\d+\s+days|before\s+'?from\b"
    r"|\bto'?\s+must\s+(not\s+)?be\s+(before|after)",
    re.IGNORECASE,
)
# Failures worth another try, wherever a request is sent (data calls and logins alike).
TRANSIENT_EXCEPTIONS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class VoluumError(FatalAPIError):
    """Base of every error tap-voluum reports to the user in one line."""


class VoluumConfigError(VoluumError):
    """A setting is missing or invalid; raised before any data request."""


class VoluumAuthError(VoluumError):
    """Voluum rejected the access key."""


class VoluumAPIError(VoluumError):
    """Voluum answered with an error that retrying will not fix.

    `status` and `code` (Voluum's `error.code`) let the caller decide whether a different
    reading of a parameter may succeed (a 400 `INVALID_QUERY`/`BAD_REQUEST`).
    """

    def __init__(self, message: str, *, status: int = 0, code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def refuses_range(self) -> bool:
        """Whether a 400 says the time range is wrong (too long, `to` before `from`)."""
        return (
            self.status == 400
            and self.code in REFUSED_PARAMETER_CODES
            and _RANGE_WORDS.search(self.detail) is not None
        )

    @property
    def is_refused_parameter(self) -> bool:
        """Whether Voluum refused a parameter value (400 with a query/format code).

        A 400 about the time range is not: no other reading of a parameter fixes it.
        """
        refused = self.status == 400 and self.code in REFUSED_PARAMETER_CODES
        return refused and not self.refuses_range


class StreamFailure(VoluumError):
    """One stream cannot go on; the others still sync and the run exits 1 at the end."""


class DeniedEndpointError(VoluumError):
    """The tap was asked to call an endpoint that refuses access-key sessions."""


def voluum_error(body: bytes) -> tuple[str, str] | None:
    """Return (code, message) from Voluum's `{"error": {...}}` envelope, or None."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    code = str(error.get("code") or "ERROR")
    parts = [str(error.get("description") or "")]
    messages = error.get("messages")
    if isinstance(messages, list):
        parts.extend(str(m) for m in messages if m)
    return code, "; ".join(p for p in parts if p)
