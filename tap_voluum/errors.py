"""Errors that end a sync with a one-line message instead of a traceback."""

from __future__ import annotations

import logging
import re
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

import msgspec
import requests
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError

if TYPE_CHECKING:
    from collections.abc import Iterator

RATE_LIMIT_CODE = "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED"
# Codes in an `error` object that describe trouble on Voluum's side, worth a retry.
TRANSIENT_CODES = frozenset(
    {RATE_LIMIT_CODE, "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "GATEWAY_TIMEOUT"}
)
# Codes of a 400 saying a parameter value was not understood (a reading to change).
REFUSED_PARAMETER_CODES = frozenset({"INVALID_QUERY", "BAD_REQUEST"})
MISSING_PARAMETER_CODE = "PARAMETER_MISSING"
# Words of a 400 saying the time range itself is wrong (its bounds' order or its length),
# not a value's format or spelling: `'to' must not be before 'from'`, "range too long",
# "too many days", "maximum period exceeded".
_RANGE_WORDS = re.compile(
    r"must not be (before|after)\b"
    r"|\b(range|period|span|interval)\b[^.;]*\btoo (long|large|wide|big)\b"
    r"|\btoo many days\b"
    r"|\bmaximum (time )?(period|range|span|interval|number of days)\b"
    r"|\b(period|range|span|interval|days)\b[^.;]*\bexceed"
    r"|\bexceed\w*\b[^.;]*\b(maximum|max)\b[^.;]*\b(period|range|span|interval|days)\b"
    r"|\b(time|date) range\b|\bdays? apart\b|\bbefore '?from\b",
    re.IGNORECASE,
)
_MISSING_NAME = re.compile(r"parameter[:\s]+'?([A-Za-z_][\w-]*)'?", re.IGNORECASE)
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

    `status` and `code` (Voluum's `error.code`) let the caller decide what the answer says:
    a value Voluum did not understand (`is_refused_parameter`: another reading of it may
    succeed), a time range it will not serve (`refuses_range`: a narrower or later range
    may), or a parameter it wants and did not get (`missing_parameter`).
    """

    def __init__(self, message: str, *, status: int = 0, code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def refuses_range(self) -> bool:
        """Whether this 400 says the time range is wrong: bounds out of order, too long.

        Such an answer says nothing of the time format or a parameter's spelling.
        """
        if self.status != 400:
            return False
        if self.code not in REFUSED_PARAMETER_CODES and "RANGE" not in self.code:
            return False
        return _RANGE_WORDS.search(self.detail or str(self)) is not None

    @property
    def is_refused_parameter(self) -> bool:
        """Whether Voluum refused a parameter value (400 with a query/format code).

        False for a refused time range (`refuses_range`) and a missing parameter.
        """
        return (
            self.status == 400 and self.code in REFUSED_PARAMETER_CODES and not self.refuses_range
        )

    @property
    def missing_parameter(self) -> str:
        """The parameter a 400 `PARAMETER_MISSING` names ("" for any other answer)."""
        if self.status != 400 or self.code != MISSING_PARAMETER_CODE:
            return ""
        found = _MISSING_NAME.search(self.detail)
        return found.group(1) if found else ""


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


RUN_ENDING_ERRORS = (VoluumAuthError, VoluumConfigError, DeniedEndpointError)
"""Errors that end the run (one account) or the account's work: every stream meets them."""


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the errors a user can meet into one line and exit 1, without a traceback."""
    try:
        yield
    except ConfigValidationError as exc:
        fail(f"invalid settings: {'; '.join(exc.errors) or exc}")
    except (VoluumError, FatalAPIError, RetriableAPIError) as exc:
        fail(str(exc))
    except requests.RequestException as exc:
        fail(f"could not reach Voluum: {type(exc).__name__}")


def fail(message: str) -> None:
    """Log one error line and exit non-zero, without a traceback."""
    logging.getLogger("tap-voluum").error("tap-voluum: %s", message)
    sys.exit(1)
